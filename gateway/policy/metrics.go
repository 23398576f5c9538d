package policy

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"

	"github.com/codevector/codevector/gateway/keyindex"
)

// Metrics count policy decisions by namespace and owner, never by key: a
// namespace has a handful of owners, but keys come and go by the thousand,
// and a label per key would grow Prometheus without bound.
type Metrics struct {
	requests     *prometheus.CounterVec
	tokens       *prometheus.CounterVec
	spend        *prometheus.CounterVec
	refusals     *prometheus.CounterVec
	engineErrors prometheus.Counter
	rebooked     prometheus.Counter
}

// NewMetrics registers the policy metrics with reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	return &Metrics{
		requests:     f.NewCounterVec(prometheus.CounterOpts{Name: "policy_requests_total", Help: "Requests admitted for keys with a per-key policy, by namespace and owner."}, []string{"namespace", "owner"}),
		tokens:       f.NewCounterVec(prometheus.CounterOpts{Name: "policy_tokens_total", Help: "Tokens used by keys with a per-key policy, by namespace, owner and direction (input, output)."}, []string{"namespace", "owner", "direction"}),
		spend:        f.NewCounterVec(prometheus.CounterOpts{Name: "policy_spend_usd_total", Help: "US dollars spent by keys with a dollar budget, priced from the providers file, by namespace and owner (exact per key in each APIKey's status.usage)."}, []string{"namespace", "owner"}),
		refusals:     f.NewCounterVec(prometheus.CounterOpts{Name: "policy_refusals_total", Help: "Requests refused by a key's policy, by namespace, owner and reason (model_not_allowed, model_not_priced, route_not_metered, invalid_body, request_too_large, requests_per_minute, tokens_per_minute, concurrent_requests, budget_exceeded, budget_unavailable, limits_unavailable)."}, []string{"namespace", "owner", "reason"}),
		engineErrors: f.NewCounter(prometheus.CounterOpts{Name: "policy_engine_errors_total", Help: "Quota engine calls that failed; the request was then refused or served uncounted, as --budget-failure-mode and --limits-failure-mode say."}),
		rebooked:     f.NewCounter(prometheus.CounterOpts{Name: "policy_concurrency_slots_rebooked_total", Help: "Concurrency slots of requests in flight counted again: in the next window of their counter, or under a new peer list (the counter's owner may have changed)."}),
	}
}

func (m *Metrics) admitted(e *keyindex.Entry) {
	if m != nil {
		m.requests.WithLabelValues(e.Name.Namespace, e.Owner).Inc()
	}
}

func (m *Metrics) refused(e *keyindex.Entry, reason string) {
	if m != nil {
		m.refusals.WithLabelValues(e.Name.Namespace, e.Owner, reason).Inc()
	}
}

func (m *Metrics) used(e *keyindex.Entry, in, out int64) {
	if m != nil {
		m.tokens.WithLabelValues(e.Name.Namespace, e.Owner, "input").Add(float64(in))
		m.tokens.WithLabelValues(e.Name.Namespace, e.Owner, "output").Add(float64(out))
	}
}

// spent counts what a request of a key with a dollar budget cost.
func (m *Metrics) spent(e *keyindex.Entry, cost gatewayv1alpha1.NanoUSD) {
	if m != nil && cost > 0 {
		m.spend.WithLabelValues(e.Name.Namespace, e.Owner).Add(float64(cost) / 1e9)
	}
}

func (m *Metrics) slotsRebooked(n int64) {
	if m != nil {
		m.rebooked.Add(float64(n))
	}
}

func (m *Metrics) engineError() {
	if m != nil {
		m.engineErrors.Inc()
	}
}
