package chaos

import (
	"fmt"
	"slices"
	"time"
)

// The checks of what the gateways count: budgets and per-minute limits.

// checkBudget: the tokens a key was billed stay within its budget, plus
// what the documented loss allows: for each gateway replica killed during
// the key's life, what the key spent in the flush interval before the kill
// (longer when the API server, its etcd, or the path to it, was down, since
// status.usage could not be written then).
func checkBudget(rep *Report, name string, k *keyLife, reqs []*Record, faults []*Record, b Bounds) {
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
	var allowance int64
	for _, f := range faults {
		if f.Fault != FaultGatewayKill {
			continue
		}
		from := f.Start.Add(-b.FlushInterval - time.Second)
		for changed := true; changed; {
			changed = false
			for _, o := range faults {
				if (o.Fault == FaultAPIServerStop || o.Fault == FaultEtcdRestart || o.Fault == FaultPartition) && o.Start.Before(from) && !o.End.Before(from) {
					from, changed = o.Start.Add(-b.FlushInterval-time.Second), true
				}
			}
		}
		for _, r := range reqs {
			if r.Status == 200 && !r.End.Before(from) && !r.Start.After(f.Start) {
				allowance += r.Tokens
			}
		}
	}
	ratio := float64(spent) / float64(budget)
	rep.WorstBudget = max(rep.WorstBudget, ratio)
	rep.WorstOverBudget = max(rep.WorstOverBudget, spent-budget)
	if spent > budget+allowance {
		rep.Violations = append(rep.Violations, Violation{Kind: KindBudgetOverrun, Key: name,
			Detail: fmt.Sprintf("billed %d tokens against a budget of %d (allowed loss from replica kills: %d)", spent, budget, allowance)})
	}
}

// checkRate: in a calendar minute with no gateway replica killed or
// stopped, nor recovering from it, the 200s that began and ended within
// it are at most the key's limit (a counter's owner never admits more
// while the peer list holds; gateway/quota's accuracy bound). While a
// counter's owner is unreachable, and until its peers have reconnected
// after its restart, keys with limits only are served uncounted
// (--limits-failure-mode open, the default).
func checkRate(rep *Report, name string, k *keyLife, reqs []*Record, faults []*Record, recovery time.Duration) {
	if k.maxPolicy.RequestsPerMinute <= 0 {
		return
	}
	counts := map[time.Time]int64{}
	for _, r := range reqs {
		m := r.Start.UTC().Truncate(time.Minute)
		if r.Status == 200 && r.End.UTC().Truncate(time.Minute).Equal(m) {
			counts[m]++
		}
	}
	minutes := make([]time.Time, 0, len(counts))
	for m := range counts {
		minutes = append(minutes, m)
	}
	slices.SortFunc(minutes, time.Time.Compare)
	for _, m := range minutes {
		end := m.Add(time.Minute)
		limit := k.limitDuring(m, end)
		if limit <= 0 || counts[m] <= limit {
			continue
		}
		faulted := false
		for _, f := range faults {
			if (f.Fault == FaultGatewayKill || f.Fault == FaultGatewayStop) && f.Start.Before(end) && !f.End.Add(recovery).Before(m) {
				faulted = true
			}
		}
		if !faulted {
			rep.Violations = append(rep.Violations, Violation{Kind: KindRateOverrun, Key: name, Start: m, End: end,
				Detail: fmt.Sprintf("%d requests served in the minute, limit %d", counts[m], limit)})
		}
	}
}

// limitDuring is the largest requests-per-minute limit the key had at any
// moment of [from, to): 0 when it had none at some moment (unlimited). A
// change under way in the minute, or one that failed (it may have landed
// all the same), counts with both limits.
func (k *keyLife) limitDuring(from, to time.Time) int64 {
	if k.created == nil {
		return 0
	}
	var limit int64
	if k.created.Policy != nil {
		limit = k.created.Policy.RequestsPerMinute
	}
	for _, p := range k.policies {
		if !p.Start.Before(to) {
			continue
		}
		var rpm int64
		if p.Policy != nil {
			rpm = p.Policy.RequestsPerMinute
		}
		if p.OK && p.End.Before(from) {
			limit = rpm
			continue
		}
		if limit == 0 || rpm == 0 {
			return 0
		}
		limit = max(limit, rpm)
	}
	return limit
}
