package chaos

import (
	"fmt"
	"slices"
	"time"
)

// The checks of what the gateways count: budgets, per-minute limits and
// concurrency limits.

// checkBudget: the tokens a key was billed stay within its budget, plus
// what the documented losses allow (docs/limits-and-budgets.md, "Across
// replicas"):
//   - for each gateway replica killed during the key's life, what the key
//     spent in the flush interval before the kill (longer when the API
//     server, its etcd, or the path to it, was down, since status.usage
//     could not be written then);
//   - for each time a replica was out of the peer lists (kubernetes
//     discovery: killed or stopped), what the key spent in the flush
//     interval before it left (its counters' interim owners restored them
//     from status.usage, which lags, or from their own last answer), and
//     from a flush interval before it was back until a flush interval
//     after: a stopped owner that comes back holds the count it had
//     before it stopped, and serves its own clients from it until its
//     peers' first requests after they re-listed it hand it the count
//     they last heard (gateway/quota, floors). What the key spent in
//     the middle of the absence is counted (before the floors, the
//     returning owner resumed from its old count and admitted it again:
//     1,280 tokens billed against 1,220, issue 28).
func checkBudget(rep *Report, name string, k *keyLife, reqs []*Record, faults, moves []*Record, b Bounds) {
	budget := k.maxPolicy.BudgetTokens
	if budget <= 0 {
		return
	}
	var spent int64
	for _, r := range reqs {
		if r.Status == 200 {
			spent += r.Tokens
		}
	}
	lag := b.FlushInterval + time.Second
	spentIn := func(from, to time.Time) (n int64) {
		for _, r := range reqs {
			if r.Status == 200 && !r.End.Before(from) && !r.Start.After(to) {
				n += r.Tokens
			}
		}
		return n
	}
	var allowance int64
	for _, f := range faults {
		if f.Fault != FaultGatewayKill {
			continue
		}
		from := f.Start.Add(-lag)
		for changed := true; changed; {
			changed = false
			for _, o := range faults {
				if (o.Fault == FaultAPIServerStop || o.Fault == FaultEtcdRestart || o.Fault == FaultPartition) && o.Start.Before(from) && !o.End.Before(from) {
					from, changed = o.Start.Add(-lag), true
				}
			}
		}
		allowance += spentIn(from, f.Start)
	}
	for _, m := range moves {
		if m.Type != TypeOutOfPeers {
			continue
		}
		if back := m.End.Add(-lag); back.After(m.Start) {
			allowance += spentIn(m.Start.Add(-lag), m.Start) + spentIn(back, m.End.Add(lag))
		} else {
			allowance += spentIn(m.Start.Add(-lag), m.End.Add(lag))
		}
	}
	ratio := float64(spent) / float64(budget)
	rep.WorstBudget = max(rep.WorstBudget, ratio)
	rep.WorstOverBudget = max(rep.WorstOverBudget, spent-budget)
	if spent > budget+allowance {
		rep.Violations = append(rep.Violations, Violation{Kind: KindBudgetOverrun, Key: name,
			Detail: fmt.Sprintf("billed %d tokens against a budget of %d (allowed loss from replica kills and owner changes: %d)", spent, budget, allowance)})
	}
}

// perMinute is one of a key's per-minute limits: what a 200 adds to it
// and the limit in a policy.
type perMinute struct {
	kind, unit string
	amount     func(*Record) int64
	limit      func(Policy) int64
	worst      func(*Report) *float64 // the report's worst share of the limit, if it keeps one
}

var (
	requestsPerMinute = perMinute{KindRateOverrun, "requests", func(*Record) int64 { return 1 }, func(p Policy) int64 { return p.RequestsPerMinute }, nil}
	// The tokens a request reserved (its prompt's bytes / 4 and its
	// max_tokens) are at least what it is billed, and the reservation is
	// settled into the minute it was taken in: what the 200s of a minute
	// were billed is at most the limit.
	tokensPerMinute = perMinute{KindTPMOverrun, "tokens", func(r *Record) int64 { return r.Tokens }, func(p Policy) int64 { return p.TokensPerMinute },
		func(r *Report) *float64 { return &r.WorstTokensPerMinute }}
)

// checkPerMinute: in a calendar minute with no gateway replica killed or
// stopped, nor recovering from it, what the 200s that began and ended
// within it add up to is at most the key's limit (a counter's owner never
// admits more while the peer list holds; gateway/quota's accuracy bound).
// While a counter's owner is unreachable, and until its peers have
// reconnected after its restart, keys with limits only are served
// uncounted (--limits-failure-mode open, the default).
func checkPerMinute(rep *Report, name string, k *keyLife, reqs []*Record, faults []*Record, recovery time.Duration, pm perMinute) {
	if pm.limit(k.maxPolicy) <= 0 {
		return
	}
	counts := map[time.Time]int64{}
	for _, r := range reqs {
		m := r.Start.UTC().Truncate(time.Minute)
		if r.Status == 200 && r.End.UTC().Truncate(time.Minute).Equal(m) {
			counts[m] += pm.amount(r)
		}
	}
	minutes := make([]time.Time, 0, len(counts))
	for m := range counts {
		minutes = append(minutes, m)
	}
	slices.SortFunc(minutes, time.Time.Compare)
	for _, m := range minutes {
		end := m.Add(time.Minute)
		limit := k.limitDuring(m, end, pm.limit)
		if limit > 0 && pm.worst != nil {
			w := pm.worst(rep)
			*w = max(*w, float64(counts[m])/float64(limit))
		}
		if limit <= 0 || counts[m] <= limit || replicaFaultDuring(faults, m, end, recovery) {
			continue
		}
		rep.Violations = append(rep.Violations, Violation{Kind: pm.kind, Key: name, Start: m, End: end,
			Detail: fmt.Sprintf("%d %s served in the minute, limit %d", counts[m], pm.unit, limit)})
	}
}

// replicaFaultDuring: a gateway replica was killed or stopped in [from,
// to), or had been less than recovery before; its counters' peers may
// have served uncounted meanwhile.
func replicaFaultDuring(faults []*Record, from, to time.Time, recovery time.Duration) bool {
	for _, f := range faults {
		if (f.Fault == FaultGatewayKill || f.Fault == FaultGatewayStop) && f.Start.Before(to) && !f.End.Add(recovery).Before(from) {
			return true
		}
	}
	return false
}

// checkConcurrency: at no moment does the provider hold more of a key's
// requests than its concurrency limit, outside a replica's fault and its
// recovery. Each replica counts the slots it holds again in each window of
// the counter (Bounds.ConcurrencyWindow) and under each new peer list, so
// neither a restart of the counter nor an owner change lets more in. What
// it allows: after a counter may have changed owner (a replica killed,
// stopped or out of the peer lists), the limit again until every replica
// has counted its slots at the new owner, which with static peers (the
// list does not change when an owner restarts) is the next window's count,
// so for the recovery plus a window after the move ends
// (docs/limits-and-budgets.md). One violation per key: its worst moment.
func checkConcurrency(rep *Report, name string, k *keyLife, calls []*Record, faults, moves []*Record, b Bounds) {
	limit := k.maxPolicy.ConcurrentRequests
	if limit <= 0 || b.ConcurrencyWindow <= 0 {
		return
	}
	var worst *Violation
	var worstOver int64
	for i, c := range calls {
		// calls are sorted by start: the moment c began, the calls in
		// flight are those before it (and c) that have not ended yet.
		t := c.Start
		var n int64
		for _, o := range calls[:i+1] {
			if o.End.After(t) || o == c {
				n++
			}
		}
		rep.WorstConcurrency = max(rep.WorstConcurrency, float64(n)/float64(limit))
		allowed, moved := limit, ""
		for _, m := range moves {
			if m.Start.Before(t) && !m.End.Add(b.Recovery+b.ConcurrencyWindow).Before(t) {
				allowed += limit
				moved = fmt.Sprintf(" (the counter may have changed owner at %s)", stamp(m.Start))
				break
			}
		}
		if n <= allowed || replicaFaultDuring(faults, t, t, b.Recovery) || n-allowed <= worstOver {
			continue
		}
		worstOver = n - allowed
		worst = &Violation{Kind: KindConcurrencyOverrun, Key: name, Start: t, End: t,
			Detail: fmt.Sprintf("%d requests at the provider at once, limit %d%s", n, limit, moved)}
	}
	if worst != nil {
		rep.Violations = append(rep.Violations, *worst)
	}
}

// limitDuring is the largest limit (of those limit picks from a policy)
// the key had at any moment of [from, to): 0 when it had none at some
// moment (unlimited). A change under way in the minute, or one that failed
// (it may have landed all the same), counts with both limits. One written
// while a replica's API-server connection was stalled counts like any
// other: its peers relay it (docs/design.md, section 14.4).
func (k *keyLife) limitDuring(from, to time.Time, limitOf func(Policy) int64) int64 {
	if k.created == nil {
		return 0
	}
	var limit int64
	if k.created.Policy != nil {
		limit = limitOf(*k.created.Policy)
	}
	for _, p := range k.policies {
		if !p.Start.Before(to) {
			continue
		}
		var l int64
		if p.Policy != nil {
			l = limitOf(*p.Policy)
		}
		if p.OK && p.End.Before(from) {
			limit = l
			continue
		}
		if limit == 0 || l == 0 {
			return 0
		}
		limit = max(limit, l)
	}
	return limit
}
