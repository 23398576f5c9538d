package proxy

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the proxy's Prometheus vectors (docs/design.md, section 7.3).
type Metrics struct {
	// Requests counts proxied requests by provider (the one that served the
	// request, after model routing; "" when the URL named no known provider)
	// and HTTP status sent to the client (499 when the client went away
	// first).
	Requests *prometheus.CounterVec
	// UpstreamLatency is the time from sending a request upstream to
	// receiving its response headers, by provider. Failed round trips are
	// not observed; they show up in Requests as 502 or 504.
	UpstreamLatency *prometheus.HistogramVec
}

// NewMetrics creates the vectors and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		Requests: f.NewCounterVec(prometheus.CounterOpts{Name: "requests_total", Help: "Proxied requests by provider and HTTP status code."}, []string{"provider", "code"}),
		UpstreamLatency: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "upstream_latency_seconds",
			Help: "Time from forwarding a request to receiving the upstream response headers.",
			// LLM time to first byte ranges from tens of milliseconds to
			// minutes for long non-streamed completions.
			Buckets: []float64{.025, .05, .1, .25, .5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"provider"}),
	}
}

// statusCodes holds the label text of every valid status so counting a
// request does not format an integer.
var statusCodes = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return s
}()

func statusLabel(code int) string {
	if code >= 100 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}

// timedTransport observes upstream latency for one provider. RoundTrip
// returns when the response headers have arrived, which is the latency a
// streaming client feels before its first token.
type timedTransport struct {
	next    http.RoundTripper
	latency prometheus.Observer
}

func (t *timedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(req)
	if err == nil {
		t.latency.Observe(time.Since(start).Seconds())
	}
	return resp, err
}
