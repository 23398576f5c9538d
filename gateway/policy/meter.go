// Package policy enforces per-key policy on the gateway (DESIGN.md section
// 12): a key's model allowlist, its request, token and concurrency limits
// and its budget. It is the proxy's Meter: the proxy reads the request and
// the response, this package decides, counting in the quota engine shared
// by every replica, and records what each key spent in status.usage.
//
// A key without a policy never reaches this package's counters: For
// returns nil and the proxy serves it exactly as before.
package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/quota"
	"github.com/codevector/codevector/gateway/usage"
)

// concurrencyWindow is how long a concurrency slot can stay counted when
// the replica holding it dies before giving it back: the counter restarts
// every window. The price is that, at each restart, requests still in
// flight stop counting, so up to twice the limit may run for as long as
// they last. Five minutes covers nearly every completion, stream or not.
const concurrencyWindow = 5 * time.Minute

// Meter implements proxy.Meter.
type Meter struct {
	engine    atomic.Pointer[quota.Engine]
	providers *proxy.Providers
	spend     *usage.SpendRecorder
	clock     clock.PassiveClock
	log       *slog.Logger
	metrics   *Metrics
}

// Options are what a Meter needs. The engine comes later, by SetEngine:
// a replica with peers starts it once it can reach the API server.
type Options struct {
	Providers *proxy.Providers
	Spend     *usage.SpendRecorder
	Clock     clock.PassiveClock
	Log       *slog.Logger
	Metrics   *Metrics
}

// New returns a Meter.
func New(o Options) *Meter {
	if o.Clock == nil {
		o.Clock = clock.RealClock{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	return &Meter{providers: o.Providers, spend: o.Spend, clock: o.Clock, log: o.Log, metrics: o.Metrics}
}

// SetEngine gives the Meter its quota engine. Until then, requests of keys
// with limits or budgets are served uncounted, as when the engine fails.
func (m *Meter) SetEngine(e *quota.Engine) { m.engine.Store(e) }

var errNoEngine = errors.New("the quota engine has not started")

// For implements proxy.Meter: nil for keys without a policy.
func (m *Meter) For(r *http.Request) proxy.RequestMeter {
	e := auth.FromContext(r.Context())
	if e == nil || e.Policy == nil {
		return nil
	}
	return &requestMeter{m: m, e: e}
}

type requestMeter struct {
	m *Meter
	e *keyindex.Entry
}

// AllowsModel implements proxy.RequestMeter.
func (rm *requestMeter) AllowsModel(model string) bool {
	return len(rm.e.Policy.Models) == 0 || proxy.MatchModel(rm.e.Policy.Models, model)
}

// counters are a key's counters, named by key ID and UID so that a
// recreated APIKey starts from zero and Checkpoint can find the key. The
// APIKey's current key ID, not the entry's: during a rotation's grace
// period its old and new keys share one set of counters.
type counters struct {
	requests, tokens, concurrent, budget *quota.Counter
}

func counterKey(e *keyindex.Entry, what string) string {
	return e.APIKeyFacts.KeyID + "/" + string(e.UID) + "/" + what
}

func countersOf(e *keyindex.Entry) counters {
	var c counters
	p := e.Policy
	if l := p.Limits; l != nil {
		if l.RequestsPerMinute != nil {
			c.requests = &quota.Counter{Key: counterKey(e, "rpm"), Limit: *l.RequestsPerMinute, Window: time.Minute}
		}
		if l.TokensPerMinute != nil {
			c.tokens = &quota.Counter{Key: counterKey(e, "tpm"), Limit: *l.TokensPerMinute, Window: time.Minute}
		}
		if l.ConcurrentRequests != nil {
			c.concurrent = &quota.Counter{Key: counterKey(e, "concurrent"), Limit: int64(*l.ConcurrentRequests), Window: concurrencyWindow}
		}
	}
	if b := p.Budget; b != nil {
		limit := int64(0)
		if b.Tokens != nil {
			limit = *b.Tokens
		} else if usd, err := gatewayv1alpha1.ParseUSD(b.USD); err == nil {
			limit = int64(usd)
		}
		c.budget = &quota.Counter{Key: counterKey(e, "budget"), Limit: limit, Period: periodOf(b.EffectivePeriod())}
	}
	return c
}

func periodOf(p gatewayv1alpha1.BudgetPeriod) quota.Period {
	switch p {
	case gatewayv1alpha1.BudgetDay:
		return quota.Day
	case gatewayv1alpha1.BudgetWeek:
		return quota.Week
	case gatewayv1alpha1.BudgetTotal:
		return quota.Total
	default:
		return quota.Month
	}
}

// Admit implements proxy.RequestMeter: the allowlist, then every counter of
// the key in one round, reserving the request's estimate.
func (rm *requestMeter) Admit(ctx context.Context, req proxy.Request) (func(proxy.Usage), *proxy.Refusal) {
	e, m := rm.e, rm.m
	if len(e.Policy.Models) > 0 && !proxy.MatchModel(e.Policy.Models, req.Model) && !(req.Method == http.MethodGet && req.Model == "") {
		m.metrics.refused(e, "model_not_allowed")
		return nil, proxy.ModelNotAllowed(req.Model)
	}

	c := countersOf(e)
	estimate := req.EstimatedInputTokens + req.MaxOutputTokens
	var budgetCost int64
	var price proxy.ModelPrice
	if b := e.Policy.Budget; b != nil {
		if b.Tokens != nil {
			budgetCost = estimate
		} else if req.Model != "" || estimate > 0 {
			var ok bool
			if price, ok = rm.price(req); !ok {
				m.metrics.refused(e, "model_not_priced")
				return nil, &proxy.Refusal{
					Status: http.StatusForbidden, Code: "model_not_priced",
					Message: fmt.Sprintf("This API key has a dollar budget and model %q has no price in the gateway's providers file, so its cost cannot be counted: ask the gateway's operator to add it under %s's pricing:.", req.Model, req.Provider),
				}
			}
			budgetCost = int64(price.Cost(req.EstimatedInputTokens, req.MaxOutputTokens))
		}
	}

	var hits []quota.Hit
	add := func(ctr *quota.Counter, n int64) int {
		if ctr == nil {
			return -1
		}
		hits = append(hits, quota.Hit{Counter: *ctr, Hits: n})
		return len(hits) - 1
	}
	iReq, iTok, iConc, iBudget := add(c.requests, 1), add(c.tokens, estimate), add(c.concurrent, 1), add(c.budget, budgetCost)

	var ds []quota.Decision
	if len(hits) > 0 {
		ok, decisions, err := false, []quota.Decision(nil), errNoEngine
		if engine := m.engine.Load(); engine != nil {
			ok, decisions, err = engine.TakeAll(ctx, hits...)
		}
		if err != nil {
			// The engine is down or a peer unreachable: serve the request
			// uncounted rather than refuse every key with a policy. The
			// metric and the log make it visible.
			m.metrics.engineError()
			m.log.Warn("Quota engine unavailable: serving the request without counting it", "apikey", e.Name.String(), "error", err)
			hits = nil
		} else if !ok {
			return nil, rm.refusal(req, hits, decisions, iReq, iTok, iConc, iBudget)
		} else {
			ds = decisions
		}
	}
	m.metrics.admitted(e)

	now := m.clock.Now()
	periodStart, _ := usage.PeriodOf(e.Policy, e.CreatedAt, now)
	return func(u proxy.Usage) {
		rm.settle(req, u, price, hits, ds, iTok, iConc, iBudget, budgetCost, estimate, periodStart)
	}, nil
}

// price is the price of the request's model on the provider serving it.
func (rm *requestMeter) price(req proxy.Request) (proxy.ModelPrice, bool) {
	prov := rm.m.providers.Get(req.Provider)
	if prov == nil {
		return proxy.ModelPrice{}, false
	}
	return prov.Price(req.Model)
}

// settle corrects the reservations to what the request really used, gives
// back its concurrency slot and records its spend.
func (rm *requestMeter) settle(req proxy.Request, u proxy.Usage, price proxy.ModelPrice, hits []quota.Hit, ds []quota.Decision,
	iTok, iConc, iBudget int, budgetCost, estimate int64, periodStart time.Time) {
	e, m := rm.e, rm.m
	used := u.InputTokens + u.OutputTokens
	cost := price.Cost(u.InputTokens, u.OutputTokens)
	// Settling must not be cut short by the request's own end (the client
	// may be gone): it has a context of its own, bounded.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	settle := func(i int, delta int64) {
		if i < 0 || ds == nil || delta == 0 {
			return
		}
		c := hits[i].Counter
		c.At = ds[i].PeriodStart
		if _, err := m.engine.Load().Settle(ctx, c, delta); err != nil {
			m.metrics.engineError()
			m.log.Warn("Quota engine unavailable: a settlement is lost", "apikey", e.Name.String(), "counter", c.Key, "delta", delta, "error", err)
		}
	}
	settle(iTok, used-estimate)
	settle(iConc, -1)
	if b := e.Policy.Budget; b != nil && b.Tokens != nil {
		settle(iBudget, used-budgetCost)
	} else {
		settle(iBudget, int64(cost)-budgetCost)
	}
	m.metrics.used(e, u.InputTokens, u.OutputTokens)
	if m.spend != nil {
		m.spend.Add(e, periodStart, usage.Spend{Requests: 1, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, USD: cost})
	}
}

// refusal explains which counter refused, with the headers OpenAI clients
// read to wait and retry.
func (rm *requestMeter) refusal(req proxy.Request, hits []quota.Hit, ds []quota.Decision, iReq, iTok, iConc, iBudget int) *proxy.Refusal {
	e, m := rm.e, rm.m
	now := m.clock.Now()
	limitOf := func(i int) *proxy.RateLimit {
		if i < 0 {
			return nil
		}
		return &proxy.RateLimit{Limit: ds[i].Limit, Remaining: ds[i].Remaining, Reset: ds[i].ResetAt.Sub(now)}
	}
	refused := func(i int) bool { return i >= 0 && !ds[i].Allowed }
	switch {
	case refused(iBudget):
		m.metrics.refused(e, "budget_exceeded")
		b := e.Policy.Budget
		wait := ds[iBudget].ResetAt.Sub(now)
		if b.EffectivePeriod() == gatewayv1alpha1.BudgetTotal {
			wait = 0
		}
		return proxy.BudgetExceeded(fmt.Sprintf("This API key has spent its budget of %s%s. %s",
			b.Summary(), untilText(wait), "An admin can raise spec.budget."), wait)
	case refused(iReq):
		m.metrics.refused(e, "requests_per_minute")
		return proxy.RateLimitExceeded(fmt.Sprintf("This API key is limited to %d requests per minute.", ds[iReq].Limit),
			ds[iReq].ResetAt.Sub(now), limitOf(iReq), limitOf(iTok))
	case refused(iTok):
		m.metrics.refused(e, "tokens_per_minute")
		msg := fmt.Sprintf("This API key is limited to %d tokens per minute; this request reserves %d (its prompt and max_tokens).",
			ds[iTok].Limit, hits[iTok].Hits)
		if hits[iTok].Hits > ds[iTok].Limit {
			msg += " Lower max_tokens: no minute can fit it."
		}
		return proxy.RateLimitExceeded(msg, ds[iTok].ResetAt.Sub(now), limitOf(iReq), limitOf(iTok))
	case refused(iConc):
		m.metrics.refused(e, "concurrent_requests")
		return proxy.RateLimitExceeded(fmt.Sprintf("This API key is limited to %d requests at a time.", ds[iConc].Limit),
			time.Second, limitOf(iReq), limitOf(iTok))
	}
	m.metrics.refused(e, "unknown")
	return proxy.RateLimitExceeded("This API key is over one of its limits.", time.Second, nil, nil)
}

func untilText(wait time.Duration) string {
	if wait <= 0 {
		return ""
	}
	return " for this period; it renews in " + strings.TrimSuffix(wait.Round(time.Minute).String(), "0s")
}
