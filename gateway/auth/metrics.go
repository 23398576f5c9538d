package auth

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics of authentication. Register them with NewMetrics(registry).
type Metrics struct {
	// okResult and okDuration are the children of results and duration for
	// "ok", looked up once: they are on every authenticated request.
	okResult       prometheus.Counter
	okDuration     prometheus.Observer
	results        *prometheus.CounterVec
	duration       *prometheus.HistogramVec
	cacheHits      prometheus.Counter
	cacheMisses    prometheus.Counter
	peerProofHits  prometheus.Counter
	argon2Total    prometheus.Counter
	argon2InFlight prometheus.Gauge
	streamsEnded   prometheus.Counter
	tarpitHeld     prometheus.Gauge
	tarpitDelayed  prometheus.Counter
	tarpitOverflow prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		results: f.NewCounterVec(prometheus.CounterOpts{Name: "auth_results_total", Help: "Authentication outcomes: ok, missing, malformed, bad_checksum, unknown, wrong_secret, revoked, expired, rate_limited, busy."}, []string{"result"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{Name: "auth_duration_seconds", Help: "Time to authenticate a request, by outcome.",
			Buckets: []float64{.00001, .00005, .0001, .0005, .001, .005, .01, .025, .05, .1, .25, 1}}, []string{"result"}),
		cacheHits:      f.NewCounter(prometheus.CounterOpts{Name: "verified_cache_hits_total", Help: "Requests authenticated from the verified-key cache, without argon2."}),
		cacheMisses:    f.NewCounter(prometheus.CounterOpts{Name: "verified_cache_misses_total", Help: "Requests whose key was not in the verified-key cache."}),
		peerProofHits:  f.NewCounter(prometheus.CounterOpts{Name: "peer_proof_hits_total", Help: "Verified-cache misses settled by a verified-key proof (one HMAC, no argon2id), most of them learned from a peer replica."}),
		argon2Total:    f.NewCounter(prometheus.CounterOpts{Name: "argon2_verifications_total", Help: "argon2id verifications run."}),
		argon2InFlight: f.NewGauge(prometheus.GaugeOpts{Name: "argon2_in_flight", Help: "argon2id verifications running now (bounded by the argon2 concurrency)."}),
		streamsEnded:   f.NewCounter(prometheus.CounterOpts{Name: "requests_ended_by_revocation_total", Help: "In-flight requests ended because their key was revoked or expired."}),
		tarpitHeld:     f.NewGauge(prometheus.GaugeOpts{Name: "tarpit_held", Help: "Refusals being held back now because their client was refused too often."}),
		tarpitDelayed:  f.NewCounter(prometheus.CounterOpts{Name: "tarpit_delayed_total", Help: "Refusals answered after the tarpit's delay."}),
		tarpitOverflow: f.NewCounter(prometheus.CounterOpts{Name: "tarpit_overflow_total", Help: "Refusals answered at once, with the connection closed, because the tarpit held its maximum."}),
	}
	m.okResult, m.okDuration = m.results.WithLabelValues("ok"), m.duration.WithLabelValues("ok")
	return m
}

func (m *Metrics) observe(result string, d time.Duration) {
	if result == "ok" {
		m.okResult.Inc()
		m.okDuration.Observe(d.Seconds())
		return
	}
	m.results.WithLabelValues(result).Inc()
	if d > 0 {
		m.duration.WithLabelValues(result).Observe(d.Seconds())
	}
}
