// Package policy enforces per-key policy on the gateway (docs/design.md, section
// 12): a key's model allowlist, its request, token and concurrency limits
// and its budget. It is the metering.Meter: gateway/metering reads the
// request and the response, this package decides, counting in the quota
// engine shared by every replica, and records what each key spent in
// status.usage.
//
// A key without a policy never reaches this package's counters: For
// returns nil and the proxy serves it exactly as before.
package policy

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/quota"
	"github.com/codevector/codevector/gateway/usage"
)

// Meter implements metering.Meter.
type Meter struct {
	engine    *Engine
	providers *providers.Providers
	spend     *usage.SpendRecorder
	slots     *slots
	clock     clock.Clock
	log       *slog.Logger
	metrics   *Metrics
	// budgetFailure and limitsFailure are Options.BudgetFailureMode and
	// LimitsFailureMode.
	budgetFailure, limitsFailure FailureMode
}

// FailureMode is what a Meter does with a request whose counters the quota
// engine cannot reach (a peer down). An engine not started yet is not a
// failure: see Engine.
type FailureMode string

const (
	// FailOpen serves the request uncounted: what a rate limiter should
	// do, since refusing every key with a limit turns a counting problem
	// into an outage.
	FailOpen FailureMode = "open"
	// FailClosed refuses the request with 503 and Retry-After: what a
	// budget should do, since an uncounted request spends money nobody
	// approved.
	FailClosed FailureMode = "closed"
)

// Options are what a Meter needs.
type Options struct {
	// Engine is where the Meter counts, started later (Engine.Start): a
	// replica with peers starts its quota engine once it can reach the API
	// server. Nil is an engine that never starts (tests of what needs no
	// counting).
	Engine    *Engine
	Providers *providers.Providers
	Spend     *usage.SpendRecorder
	Clock     clock.Clock
	Log       *slog.Logger
	Metrics   *Metrics
	// BudgetFailureMode applies to keys with a budget when the engine is
	// unreachable; default FailClosed.
	BudgetFailureMode FailureMode
	// LimitsFailureMode applies to keys with per-minute or concurrency
	// limits and no budget; default FailOpen.
	LimitsFailureMode FailureMode
}

// New returns a Meter.
func New(o Options) *Meter {
	o.Clock = cmp.Or[clock.Clock](o.Clock, clock.RealClock{})
	o.Log = cmp.Or(o.Log, slog.Default())
	o.BudgetFailureMode = cmp.Or(o.BudgetFailureMode, FailClosed)
	o.LimitsFailureMode = cmp.Or(o.LimitsFailureMode, FailOpen)
	if o.Engine == nil {
		o.Engine = NewEngine()
	}
	return &Meter{engine: o.Engine, providers: o.Providers, spend: o.Spend, clock: o.Clock, log: o.Log, metrics: o.Metrics,
		slots:         newSlots(o.Engine, o.Clock, o.Log, o.Metrics),
		budgetFailure: o.BudgetFailureMode, limitsFailure: o.LimitsFailureMode}
}

// Run keeps the concurrency slots of the requests in flight counted as
// their counters' windows and peer lists change (concurrency.go), until
// ctx ends.
func (m *Meter) Run(ctx context.Context) { m.slots.Run(ctx, m.clock) }

// For implements metering.Meter: nil for keys without a policy.
func (m *Meter) For(r *http.Request) metering.RequestMeter {
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

// AllowsModel implements metering.RequestMeter.
func (rm *requestMeter) AllowsModel(model string) bool {
	return len(rm.e.Policy.Models) == 0 || metering.MatchModel(rm.e.Policy.Models, model)
}

// counters are a key's counters, named by the APIKey's namespace, name
// and UID: the key's identity, not its current secret's, so that a
// rotation, its grace period and every replica share one count (issue 23:
// counters named by key ID handed a rotated key a fresh minute and a fresh
// budget), while a recreated APIKey, a new UID, starts from zero.
// Checkpoint finds the APIKey by name.
type counters struct {
	requests, tokens, concurrent, budget *quota.Counter
}

func counterKey(e *keyindex.Entry, what string) string {
	return e.Name.Namespace + "/" + e.Name.Name + "/" + string(e.UID) + "/" + what
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

// Admit implements metering.RequestMeter: the allowlist, then every counter of
// the key in one round, reserving the request's worst case.
func (rm *requestMeter) Admit(ctx context.Context, req metering.Request) metering.Admission {
	e, m := rm.e, rm.m
	pol := e.Policy
	if len(pol.Models) > 0 && !metering.MatchModel(pol.Models, req.Model) && !(req.Billing == metering.BillingFree && req.Model == "") {
		return rm.refuse("model_not_allowed", metering.ModelNotAllowed(req.Model))
	}
	var tpm *int64
	if pol.Limits != nil {
		tpm = pol.Limits.TokensPerMinute
	}
	if (pol.Budget != nil || tpm != nil) && req.Billing == metering.BillingUnknown {
		return rm.refuse("route_not_metered", &metering.Refusal{
			Status: http.StatusForbidden, Code: "route_not_metered",
			Message: fmt.Sprintf("This API key's tokens or spend are counted, and the gateway cannot tell what %s %s costs before it is answered (uploads, images, audio and routes added in the providers file have no token price), so it refuses it rather than count it as free. Use a key without spec.budget and spec.limits.tokensPerMinute.",
				req.Method, truncate(req.Path, 128)),
		})
	}

	a := &admitted{req: req, res: reservationOf(req)}
	if b := pol.Budget; b != nil && b.Tokens == nil && req.Billing != metering.BillingFree {
		var ok bool
		if a.price, ok = rm.price(req); !ok {
			return rm.refuse("model_not_priced", &metering.Refusal{
				Status: http.StatusForbidden, Code: "model_not_priced",
				Message: fmt.Sprintf("This API key has a dollar budget and model %q has no price in the gateway's providers file, so its cost cannot be counted: ask the gateway's operator to add it under %s's pricing:.", truncate(req.Model, 128), req.Provider),
			})
		}
	}
	// An answer that no minute could hold is bounded to the minute's limit
	// up front, when the client left the bound to us.
	clampable := req.Billing == metering.BillingTokens && !req.OutputBoundAsked
	if tpm != nil && clampable {
		if tokens, err := a.res.tokens(); err != nil || tokens > *tpm {
			if fit := a.res.outputThatFits(*tpm); fit >= 1 && fit < a.res.outputPerAnswer {
				a.res.outputPerAnswer = fit
			}
		}
	}

	for attempt := 0; ; attempt++ {
		engine := m.engine.get()
		if err := a.plan(e, engine, m.clock.Now()); err != nil {
			return rm.refuse("request_too_large", &metering.Refusal{
				Status: http.StatusBadRequest, Code: "request_too_large",
				Message: fmt.Sprintf("This request cannot be counted: %v (%d answers of up to %d tokens, and about %d of prompt). Lower max_tokens or n.", err, a.res.answers, a.res.outputPerAnswer, a.res.input),
			})
		}
		if len(a.hits) == 0 {
			break
		}
		if engine == nil {
			return rm.starting()
		}
		ok, decisions, err := engine.TakeAll(ctx, a.hits...)
		if err != nil {
			return rm.engineFailed(a, err)
		}
		a.ds = decisions
		if ok {
			break
		}
		// The budget refused a request that left its output bound to us:
		// a shorter answer may fit what is left.
		if attempt == 0 && clampable && a.refusedOnlyBy(a.iBudget, a.iTok) && a.refused(a.iBudget) {
			if fit := a.outputThatFitsTheBudget(pol.Budget); fit >= 1 && fit < a.res.outputPerAnswer {
				a.res.outputPerAnswer = fit
				continue
			}
		}
		return metering.Admission{Refusal: rm.refusal(a)}
	}
	return rm.admit(a)
}

// admit lets a through, counted (a.ds) or not: its settlement, and the
// smaller output bound when its reservation was clamped.
func (rm *requestMeter) admit(a *admitted) metering.Admission {
	rm.m.metrics.admitted(rm.e)
	a.periodStart, _ = usage.PeriodOf(rm.e.Policy, rm.e.CreatedAt, rm.m.clock.Now())
	if len(a.iConc) > 0 && a.ds != nil {
		taken := make([]booking, len(a.iConc))
		for j, i := range a.iConc {
			taken[j] = booking{peers: a.peers, start: a.ds[i].PeriodStart}
		}
		a.slot = rm.m.slots.hold(a.concurrent, taken)
	}
	adm := metering.Admission{Settle: func(u metering.Usage) { rm.settle(a, u) }}
	if a.res.outputPerAnswer < a.req.MaxOutputTokens {
		adm.ClampOutputTokens = a.res.outputPerAnswer
	}
	return adm
}

// admitted is one request's way through Admit and settle: its reservation,
// what it took from which counter, and the engine's answers.
type admitted struct {
	req   metering.Request
	res   reservation
	price providers.ModelPrice
	// tokens and budgetCost are the reservation as taken from the tokens
	// per minute and budget counters.
	tokens, budgetCost int64
	hits               []quota.Hit
	ds                 []quota.Decision // nil when nothing was counted
	// Indexes into hits and ds, -1 for a counter the key does not have.
	iReq, iTok, iBudget int
	// iConc are the concurrency counter's windows (concurrency.go): the
	// current one, and the next near its end; none without a limit.
	iConc       []int
	concurrent  quota.Counter // the key's concurrency counter, without peer list or window
	peers       string        // the peer list the concurrency counter was taken under
	slot        *slot         // the concurrency slot held, nil when none was counted
	periodStart time.Time
}

// plan computes the reservation's hits on e's counters, at now with
// engine's peer list (engine nil: not started, nothing will be taken).
func (a *admitted) plan(e *keyindex.Entry, engine Counts, now time.Time) error {
	tokens, err := a.res.tokens()
	if err != nil {
		return err
	}
	a.tokens, a.budgetCost = tokens, 0
	if b := e.Policy.Budget; b != nil {
		if b.Tokens != nil {
			a.budgetCost = tokens
		} else {
			cost, err := a.res.cost(a.price)
			if err != nil {
				return err
			}
			a.budgetCost = int64(cost)
		}
	}
	c := countersOf(e)
	a.hits, a.ds = a.hits[:0], nil
	add := func(ctr *quota.Counter, n int64) int {
		if ctr == nil {
			return -1
		}
		a.hits = append(a.hits, quota.Hit{Counter: *ctr, Hits: n})
		return len(a.hits) - 1
	}
	a.iReq, a.iTok, a.iBudget = add(c.requests, 1), add(c.tokens, a.tokens), add(c.budget, a.budgetCost)
	a.iConc = a.iConc[:0]
	if c.concurrent != nil {
		a.concurrent, a.peers = *c.concurrent, ""
		if engine != nil {
			a.peers, _ = engine.PeerList()
		}
		for _, w := range concurrencyWindowsAt(now) {
			ctr := concurrencyCounter(a.concurrent, a.peers, w)
			a.iConc = append(a.iConc, add(&ctr, 1))
		}
	}
	return nil
}

func (a *admitted) refused(i int) bool { return i >= 0 && a.ds != nil && !a.ds[i].Allowed }

// refusedOnlyBy reports that no counter but these refused.
func (a *admitted) refusedOnlyBy(allowed ...int) bool {
	for i := range a.hits {
		if a.refused(i) && !slices.Contains(allowed, i) {
			return false
		}
	}
	return true
}

// outputThatFitsTheBudget is the largest output per answer that fits what
// the budget had left when it refused.
func (a *admitted) outputThatFitsTheBudget(b *gatewayv1alpha1.Budget) int64 {
	left := a.ds[a.iBudget].Remaining
	if b.Tokens != nil {
		return a.res.outputThatFits(left)
	}
	return a.res.outputThatCosts(gatewayv1alpha1.NanoUSD(left), a.price)
}

// engineFailed applies the failure modes to a request the engine could not
// count: refused while a budget (by default) or limits (by choice) fail
// closed, else served uncounted.
func (rm *requestMeter) engineFailed(a *admitted, err error) metering.Admission {
	e, m := rm.e, rm.m
	m.metrics.engineError()
	what, mode := "limits", m.limitsFailure
	if e.Policy.Budget != nil && m.budgetFailure == FailClosed {
		what, mode = "budget", FailClosed
	}
	if mode == FailClosed {
		m.log.Warn("Quota engine unavailable: refusing the request of a key whose "+what+" fails closed", "apikey", e.Name.String(), "error", err)
		return rm.unavailable(what, "The gateway cannot count this API key's "+what+" right now, and does not serve it uncounted. Retry shortly.")
	}
	m.log.Warn("Quota engine unavailable: serving the request without counting it", "apikey", e.Name.String(), "error", err)
	a.hits, a.ds = nil, nil
	return rm.admit(a)
}

// starting refuses a request to count before the engine has started,
// whatever the failure modes: they are for an engine that fails, and a
// replica that has not started yet has no reason to serve uncounted.
func (rm *requestMeter) starting() metering.Admission {
	what := "limits"
	if rm.e.Policy.Budget != nil {
		what = "budget"
	}
	return rm.unavailable(what, "The gateway is starting and cannot count this API key's "+what+" yet, and does not serve it uncounted. Retry shortly.")
}

// unavailable refuses a request whose counters cannot be reached: 503
// {what}_unavailable.
func (rm *requestMeter) unavailable(what, msg string) metering.Admission {
	return rm.refuse(what+"_unavailable", &metering.Refusal{
		Status: http.StatusServiceUnavailable, Type: "server_error", Code: what + "_unavailable",
		Message: msg,
		// A 503 with a short wait: the SDKs retry it on their own.
		RetryAfter: time.Second,
	})
}

// refuse counts a refusal by reason and returns it.
func (rm *requestMeter) refuse(reason string, f *metering.Refusal) metering.Admission {
	rm.m.metrics.refused(rm.e, reason)
	return metering.Admission{Refusal: f}
}

// Refused implements metering.RequestMeter: a refusal metering wrote itself.
func (rm *requestMeter) Refused(reason string) { rm.m.metrics.refused(rm.e, reason) }

// price is the price of the request's model on the provider serving it.
func (rm *requestMeter) price(req metering.Request) (providers.ModelPrice, bool) {
	prov := rm.m.providers.Get(req.Provider)
	if prov == nil {
		return providers.ModelPrice{}, false
	}
	return prov.Price(req.Model)
}

// settle corrects the reservations to what the request really used, gives
// back its concurrency slot and records its spend.
func (rm *requestMeter) settle(a *admitted, u metering.Usage) {
	e, m := rm.e, rm.m
	// The provider's counts are bounded like the client's: a count past
	// any request's (a broken or hostile upstream) must not wrap a counter.
	in, out := min(max(u.InputTokens, 0), maxReservedTokens), min(max(u.OutputTokens, 0), maxReservedTokens)
	used := in + out
	cost := a.price.Cost(in, out)
	// Settling must not be cut short by the request's own end (the client
	// may be gone): it has a context of its own, bounded.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	settle := func(i int, delta int64) {
		if i < 0 || a.ds == nil || delta == 0 {
			return
		}
		c := a.hits[i].Counter
		c.At = a.ds[i].PeriodStart
		if _, err := m.engine.get().Settle(ctx, c, delta); err != nil {
			m.metrics.engineError()
			m.log.Warn("Quota engine unavailable: a settlement is lost", "apikey", e.Name.String(), "counter", c.Key, "delta", delta, "error", err)
		}
	}
	settle(a.iTok, used-a.tokens)
	if a.slot != nil {
		m.slots.release(ctx, a.slot)
	}
	if b := e.Policy.Budget; b != nil && b.Tokens != nil {
		settle(a.iBudget, used-a.budgetCost)
	} else {
		settle(a.iBudget, int64(cost)-a.budgetCost)
	}
	m.metrics.used(e, in, out)
	m.metrics.spent(e, cost)
	if m.spend != nil {
		m.spend.Add(e, a.periodStart, usage.Spend{Requests: 1, InputTokens: in, OutputTokens: out, USD: cost})
	}
}

// refusal explains which counter refused, with the headers OpenAI clients
// read to wait and retry.
func (rm *requestMeter) refusal(a *admitted) *metering.Refusal {
	e, m := rm.e, rm.m
	now := m.clock.Now()
	ds := a.ds
	limitOf := func(i int) *metering.RateLimit {
		if i < 0 {
			return nil
		}
		return &metering.RateLimit{Limit: ds[i].Limit, Remaining: ds[i].Remaining, Reset: ds[i].ResetAt.Sub(now)}
	}
	switch {
	case a.refused(a.iBudget):
		m.metrics.refused(e, "budget_exceeded")
		return budgetRefusal(e.Policy.Budget, a, ds[a.iBudget], now)
	case a.refused(a.iReq):
		m.metrics.refused(e, "requests_per_minute")
		return metering.RateLimitExceeded(fmt.Sprintf("This API key is limited to %d requests per minute.", ds[a.iReq].Limit),
			ds[a.iReq].ResetAt.Sub(now), limitOf(a.iReq), limitOf(a.iTok))
	case a.refused(a.iTok):
		m.metrics.refused(e, "tokens_per_minute")
		msg := fmt.Sprintf("This API key is limited to %s tokens per minute; this request reserves %s (its prompt and max_tokens × n), and %s are left this minute.",
			exactCount(ds[a.iTok].Limit), exactCount(a.tokens), exactCount(max(ds[a.iTok].Remaining, 0)))
		if a.tokens > ds[a.iTok].Limit {
			msg += " Lower max_tokens: no minute can fit it."
		}
		return metering.RateLimitExceeded(msg, ds[a.iTok].ResetAt.Sub(now), limitOf(a.iReq), limitOf(a.iTok))
	case slices.ContainsFunc(a.iConc, a.refused):
		m.metrics.refused(e, "concurrent_requests")
		return metering.RateLimitExceeded(fmt.Sprintf("This API key is limited to %d requests at a time.", a.concurrent.Limit),
			time.Second, limitOf(a.iReq), limitOf(a.iTok))
	}
	m.metrics.refused(e, "unknown")
	return metering.RateLimitExceeded("This API key is over one of its limits.", time.Second, nil, nil)
}

// budgetRefusal says which of two things happened: the budget is spent
// (nothing left, wait for the period), or this request needs more than
// what is left (a smaller one may still fit).
func budgetRefusal(b *gatewayv1alpha1.Budget, a *admitted, d quota.Decision, now time.Time) *metering.Refusal {
	wait := d.ResetAt.Sub(now)
	total := b.EffectivePeriod() == gatewayv1alpha1.BudgetTotal
	if total {
		wait = 0
	}
	amount := func(n int64) string {
		if b.Tokens != nil {
			return exactCount(n) + " tokens"
		}
		return gatewayv1alpha1.NanoUSD(n).Display()
	}
	period := "this " + string(b.EffectivePeriod())
	if total {
		period = "in total"
	}
	if d.Remaining <= 0 {
		return metering.BudgetExceeded(fmt.Sprintf("This API key has spent its budget of %s%s. An admin can raise spec.budget.",
			b.Summary(), renewsIn(wait)), wait)
	}
	return metering.BudgetExceeded(fmt.Sprintf("This request needs up to %s (about %s of prompt and up to %s of output), and this API key has %s left %s of its budget of %s%s. Lower max_tokens or n, or shorten the prompt.",
		amount(a.budgetCost), exactCount(a.res.input), exactCount(a.res.outputPerAnswer*a.res.answers),
		amount(d.Remaining), period, b.Summary(), renewsIn(wait)), wait)
}

// exactCount writes a count with thousands separators (128,012): a
// refusal that says what a request needs must be exact, where the short
// form (128k) rounds.
func exactCount(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func renewsIn(wait time.Duration) string {
	if wait <= 0 {
		return ""
	}
	return "; it renews in " + strings.TrimSuffix(wait.Round(time.Minute).String(), "0s")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
