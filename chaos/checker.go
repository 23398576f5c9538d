package chaos

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Bounds are the promises' tolerances, from the docs the product ships
// (docs/reliability.md, section "Chaos under load", says which is which).
type Bounds struct {
	// Propagation: a key is known to every healthy replica this long after
	// its creation (or rotation, or a policy change) was confirmed to the
	// user; before that a refusal is no violation.
	Propagation time.Duration
	// Recovery: this long after a fault ends, a valid key works again on
	// every replica (the gateway's API-server probe, watch resync and peer
	// reconnects).
	Recovery time.Duration
	// RetireSlack: a request that starts this long after a revocation or a
	// deletion was confirmed to the user, or after an expiry or a grace
	// period ended, must be refused. Zero is the promise: confirmed means
	// every live replica refuses, and expiry is checked on each replica's
	// own clock.
	RetireSlack time.Duration
	// Margin: a request this close before an expiry or a grace end is
	// neither required to work nor to be refused (the replica reads the
	// clock a moment after the harness does).
	Margin time.Duration
	// FlushInterval is the gateways' --last-used-interval: what a replica
	// spent in the last interval before it was killed is not in
	// status.usage, from which a restarted counter owner restores a budget
	// (docs/limits-and-budgets.md, "Across replicas"; gateway/policy
	// Checkpoint).
	FlushInterval time.Duration
	// ConcurrencyWindow is how often a key's concurrency counter restarts
	// (gateway/policy's concurrencyWindow). Each replica counts its slots
	// again in every window, so after a counter's owner changed without a
	// change of peer list (an owner restarted, static peers), every slot
	// is counted at the new owner within a window.
	ConcurrencyWindow time.Duration
}

// Violation is one broken promise.
type Violation struct {
	Kind    string
	Key     string
	Replica string
	Start   time.Time
	End     time.Time
	Detail  string
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "violation: %s key=%s", v.Kind, v.Key)
	if v.Replica != "" {
		fmt.Fprintf(&b, " replica=%s", v.Replica)
	}
	if !v.Start.IsZero() {
		fmt.Fprintf(&b, " at %s..%s", stamp(v.Start), stamp(v.End))
	}
	if v.Detail != "" {
		b.WriteString(": " + v.Detail)
	}
	return b.String()
}

func stamp(t time.Time) string { return t.UTC().Format("15:04:05.000") }

// Violation kinds.
const (
	KindRetiredServed = "retired-key-served" // 200 after a confirmed revocation or deletion
	KindExpiredServed = "expired-key-served" // 200 after expiry or a grace period's end
	KindBudgetOverrun = "budget-overrun"     // more tokens than budget plus the documented loss
	KindRateOverrun   = "rate-limit-overrun" // more requests in a calendar minute than the limit
	KindTPMOverrun    = "tpm-overrun"        // more tokens billed in a calendar minute than the limit
	// More of a key's requests at the provider at once than its
	// concurrency limit (twice it just after its counter changed owner).
	KindConcurrencyOverrun = "concurrency-overrun"
	KindValidRefused       = "valid-key-refused" // a good key refused outside any fault's recovery window
	KindKeyLost            = "key-lost"          // an Active key that never works again after the faults
	KindKeyLeaked          = "key-leaked"        // a full key in a log, an event or a status
)

// Report is what Check found.
type Report struct {
	// Setup is the run's setup record, if the history has one.
	Setup                 string
	Requests, Faults, Ops int
	// Stalls are the machine stalls the harness saw (FaultMachineStall):
	// like a fault, each excuses a refusal during it and its recovery.
	Stalls     int
	Violations []Violation
	// WorstConfirm is the longest a revocation or deletion took to be
	// confirmed by every live replica; LastServedAfterRetire is the latest
	// start of a 200 relative to that confirmation (negative: every 200
	// began before it).
	WorstConfirm          time.Duration
	LastServedAfterRetire time.Duration
	// WorstBudget is the largest spent/budget ratio of a key, and
	// WorstOverBudget the most tokens a key spent beyond its budget.
	WorstBudget     float64
	WorstOverBudget int64
	// WorstTokensPerMinute is the largest share of its tokens-per-minute
	// limit a key was billed in a calendar minute, WorstConcurrency the
	// largest share of its concurrency limit held at the provider at once
	// (faults and the counter's restart included: the bounds allow more).
	WorstTokensPerMinute, WorstConcurrency float64
	// Unconfirmed counts revocations and deletions the CLI could not
	// confirm (a fault in the way): nothing is promised for them.
	Unconfirmed int
	// MustRefuse counts the requests that began after their key or
	// secret was retired (all must be refused); MustServe those that a
	// good key made with no fault to excuse a refusal. Together they say
	// how much of the history the promises were held against.
	MustRefuse, MustServe int
}

// Summary is the final line of a run.
func (r Report) Summary() string {
	return fmt.Sprintf("chaos: %d requests, %d faults, violations: %d", r.Requests, r.Faults, len(r.Violations))
}

// keyLife is what the operations of a history say about one APIKey.
type keyLife struct {
	created     *Record // the confirmed create, nil if none
	retireStart time.Time
	retired     *Record // the first confirmed revoke or delete
	rotations   []*Record
	policies    []*Record
	maxPolicy   Policy
	policyKeys  bool // the key has a limit or a budget at some point: 429 is an answer
}

func (k *keyLife) expiresAt() time.Time {
	if k.created == nil {
		return time.Time{}
	}
	return k.created.ExpiresAt
}

// Check holds a history to the promises and lists what broke them. It is a
// pure function of its arguments, so a history written by a run can be
// checked again (ReadHistory).
func Check(history []Record, b Bounds) Report {
	c := newChecking(history, b)
	c.checkRequests()
	c.checkCounts()
	checkLost(&c.rep, c.names, c.keys, c.byKey, c.faults, b)
	return c.rep
}

// checking is a history sorted out by what each promise needs.
type checking struct {
	b    Bounds
	rep  Report
	keys map[string]*keyLife
	// names are the keys' names, sorted, so violations come in one order.
	names            []string
	faults, requests []*Record
	// moves are the moments a counter may have changed owner: replicas
	// out of the peer lists (TypeOutOfPeers) and gateway kills and stops.
	moves []*Record
	// byKey and upstreamByKey are each key's requests and the provider's
	// calls for it.
	byKey, upstreamByKey map[string][]*Record
}

func newChecking(history []Record, b Bounds) *checking {
	h := slices.Clone(history)
	slices.SortStableFunc(h, func(x, y Record) int { return x.Start.Compare(y.Start) })
	c := &checking{b: b, keys: map[string]*keyLife{}, byKey: map[string][]*Record{}, upstreamByKey: map[string][]*Record{}}
	for i := range h {
		r := &h[i]
		switch r.Type {
		case TypeRequest:
			c.requests = append(c.requests, r)
			c.byKey[r.Key] = append(c.byKey[r.Key], r)
		case TypeUpstream:
			c.upstreamByKey[r.Key] = append(c.upstreamByKey[r.Key], r)
		case TypeFault:
			c.faults = append(c.faults, r)
			if r.Fault == FaultGatewayKill || r.Fault == FaultGatewayStop {
				c.moves = append(c.moves, r)
			}
		case TypeOutOfPeers:
			c.moves = append(c.moves, r)
		case TypeSetup:
			c.rep.Setup = r.Detail
		case TypeLeak:
			c.rep.Violations = append(c.rep.Violations, Violation{Kind: KindKeyLeaked, Key: r.Key, Start: r.Start, End: r.End, Detail: r.Detail})
		case TypeOp:
			if c.keys[r.Key] == nil {
				c.keys[r.Key] = &keyLife{}
				c.names = append(c.names, r.Key)
			}
			c.keys[r.Key].note(r, &c.rep)
			c.rep.Ops++
		}
	}
	slices.Sort(c.names)
	c.rep.Requests = len(c.requests)
	for _, f := range c.faults {
		if f.Fault == FaultMachineStall {
			c.rep.Stalls++
		} else {
			c.rep.Faults++
		}
	}
	return c
}

// note adds an operation on the key to what is known of its life.
func (k *keyLife) note(r *Record, rep *Report) {
	switch r.Op {
	case OpCreate:
		if r.OK && k.created == nil {
			k.created = r
		}
	case OpRevoke, OpDelete:
		if k.retireStart.IsZero() {
			k.retireStart = r.Start
		}
		if r.OK && k.retired == nil {
			k.retired = r
			rep.WorstConfirm = max(rep.WorstConfirm, r.End.Sub(r.Start))
		} else if !r.OK {
			rep.Unconfirmed++
		}
	case OpRotate:
		k.rotations = append(k.rotations, r)
	case OpPolicy:
		k.policies = append(k.policies, r)
	}
	if p := r.Policy; p != nil {
		k.maxPolicy.RequestsPerMinute = max(k.maxPolicy.RequestsPerMinute, p.RequestsPerMinute)
		k.maxPolicy.TokensPerMinute = max(k.maxPolicy.TokensPerMinute, p.TokensPerMinute)
		k.maxPolicy.ConcurrentRequests = max(k.maxPolicy.ConcurrentRequests, p.ConcurrentRequests)
		k.maxPolicy.BudgetTokens = max(k.maxPolicy.BudgetTokens, p.BudgetTokens)
		if *p != (Policy{}) {
			k.policyKeys = true
		}
	}
}

// excused: a fault was under way, or recovering, during the request.
// The manager's does not excuse a refusal (the request path does not
// need it), nor does one replica's on another replica, unless the key
// has a limit or a budget: its counters may be owned by the replica
// that is down (budgets then fail closed, as documented). The API
// server's and etcd's excuse every refusal, and so does a machine stall.
func (c *checking) excused(r *Record, k *keyLife) bool {
	for _, f := range c.faults {
		if f.Start.After(r.End) || f.End.Add(c.b.Recovery).Before(r.Start) {
			continue
		}
		switch f.Fault {
		case FaultManagerKill:
		case FaultGatewayKill, FaultGatewayStop, FaultPartition:
			if f.Target == r.Replica || k.policyKeys {
				return true
			}
		default:
			return true
		}
	}
	return false
}

// checkRequests holds each request to what its key promised at the time:
// a 200 only while the key and its secret were valid, and no refusal of
// a good key that no fault excuses.
func (c *checking) checkRequests() {
	rep, b := &c.rep, c.b
	rep.LastServedAfterRetire = -time.Duration(1 << 62)
	for _, r := range c.requests {
		k := c.keys[r.Key]
		if k == nil {
			continue // a key the history never created: the harness's own probe
		}
		if k.mustRefuse(r, c.faults, b) {
			rep.MustRefuse++
		} else if k.good(r, b) && !c.excused(r, k) {
			rep.MustServe++
		}
		if r.Status == 200 {
			checkServed(rep, k, r, c.faults, b)
			continue
		}
		if r.Status == 429 && k.policyKeys {
			continue // a limit or a budget said no: checked by count below
		}
		if k.good(r, b) && !c.excused(r, k) {
			rep.Violations = append(rep.Violations, Violation{Kind: KindValidRefused, Key: r.Key, Replica: r.Replica, Start: r.Start, End: r.End,
				Detail: fmt.Sprintf("secret %d answered %d %s with no fault that excuses it within %v", r.Gen, r.Status, r.Code, b.Recovery)})
		}
	}
	if rep.LastServedAfterRetire == -time.Duration(1<<62) {
		rep.LastServedAfterRetire = 0
	}
}

// checkCounts holds each key to its budget and its limits (counts.go).
func (c *checking) checkCounts() {
	for _, name := range c.names {
		k, reqs := c.keys[name], c.byKey[name]
		checkBudget(&c.rep, name, k, reqs, c.faults, c.moves, c.b)
		checkPerMinute(&c.rep, name, k, reqs, c.faults, c.b.Recovery, requestsPerMinute)
		checkPerMinute(&c.rep, name, k, reqs, c.faults, c.b.Recovery, tokensPerMinute)
		checkConcurrency(&c.rep, name, k, c.upstreamByKey[name], c.faults, c.moves, c.b)
	}
}

// checkServed: a 200 must not start after the key (or this secret of it)
// was retired.
func checkServed(rep *Report, k *keyLife, r *Record, faults []*Record, b Bounds) {
	if k.retired != nil {
		after := r.Start.Sub(k.retired.End)
		rep.LastServedAfterRetire = max(rep.LastServedAfterRetire, after)
		if after > b.RetireSlack {
			rep.Violations = append(rep.Violations, Violation{Kind: KindRetiredServed, Key: r.Key, Replica: r.Replica, Start: r.Start, End: r.End,
				Detail: fmt.Sprintf("secret %d served 200, %v after `%s` was confirmed (%s)", r.Gen, after.Round(time.Millisecond), k.retired.Op, k.retired.Detail)})
		}
	}
	if exp := k.expiresAt(); !exp.IsZero() && r.Start.Sub(exp) > b.RetireSlack {
		rep.Violations = append(rep.Violations, Violation{Kind: KindExpiredServed, Key: r.Key, Replica: r.Replica, Start: r.Start, End: r.End,
			Detail: fmt.Sprintf("secret %d served 200, %v after the key expired at %s", r.Gen, r.Start.Sub(exp).Round(time.Millisecond), stamp(exp))})
	}
	for _, rot := range k.rotations {
		end, ok := secretEnd(rot, r)
		if !ok {
			continue
		}
		if r.Start.Sub(end) > b.RetireSlack {
			rep.Violations = append(rep.Violations, Violation{Kind: KindExpiredServed, Key: r.Key, Replica: r.Replica, Start: r.Start, End: r.End,
				Detail: fmt.Sprintf("secret %d served 200, %v after its grace period ended at %s (rotation to secret %d)", r.Gen, r.Start.Sub(end).Round(time.Millisecond), stamp(end), rot.Gen)})
			return
		}
	}
}

// mustRefuse: the request began after its key was retired (confirmed),
// expired, or its secret's grace ended.
func (k *keyLife) mustRefuse(r *Record, faults []*Record, b Bounds) bool {
	if k.retired != nil && r.Start.Sub(k.retired.End) > b.RetireSlack {
		return true
	}
	if exp := k.expiresAt(); !exp.IsZero() && r.Start.Sub(exp) > b.RetireSlack {
		return true
	}
	for _, rot := range k.rotations {
		if end, ok := secretEnd(rot, r); ok && r.Start.Sub(end) > b.RetireSlack {
			return true
		}
	}
	return false
}

// secretEnd is when rot ends the secret r used: the rotation to r.Gen+1
// keeps it for its grace period, any later one ends it (only one previous
// secret is kept). ok is false when rot does not end it. The end is the
// same on every replica, one whose API-server connection was stalled while
// the rotation was written included: its peers relay the rotation
// (docs/design.md, section 14.4).
func secretEnd(rot, r *Record) (end time.Time, ok bool) {
	if !rot.OK || rot.Gen <= r.Gen {
		return time.Time{}, false
	}
	if rot.Gen == r.Gen+1 {
		return rot.ExpiresAt, true
	}
	return rot.End, true
}

// good: the request used a secret that was, for its whole interval and
// the propagation bound before it, valid and unchanged.
func (k *keyLife) good(r *Record, b Bounds) bool {
	if k.created == nil || r.Start.Before(k.created.End.Add(b.Propagation)) {
		return false
	}
	if !k.retireStart.IsZero() && !r.End.Before(k.retireStart) {
		return false
	}
	if exp := k.expiresAt(); !exp.IsZero() && !r.End.Before(exp.Add(-b.Margin)) {
		return false
	}
	current := 0
	for _, rot := range k.rotations {
		if rot.Start.After(r.End) {
			continue
		}
		if !rot.OK {
			return false // state unknown from its start
		}
		switch {
		case rot.Gen == r.Gen:
			if r.Start.Before(rot.End.Add(b.Propagation)) {
				return false
			}
		case rot.Gen == r.Gen+1:
			if !r.End.Before(rot.ExpiresAt.Add(-b.Margin)) {
				return false
			}
		case rot.Gen > r.Gen+1:
			return false
		}
		current = max(current, rot.Gen)
	}
	if r.Gen > current {
		return false
	}
	for _, p := range k.policies {
		if !p.Start.Add(-b.Propagation).After(r.End) && !p.End.Add(b.Propagation).Before(r.Start) {
			return false
		}
	}
	return true
}

// checkLost: once the last fault has ended and the recovery bound passed,
// every key that should work answers 200 (or 429, a limit) at least once
// to its current secret, if it was tried.
func checkLost(rep *Report, names []string, keys map[string]*keyLife, byKey map[string][]*Record, faults []*Record, b Bounds) {
	var quiet time.Time
	for _, f := range faults {
		if e := f.End.Add(b.Recovery); e.After(quiet) {
			quiet = e
		}
	}
	for _, name := range names {
		k := keys[name]
		if k.created == nil || !k.retireStart.IsZero() {
			continue
		}
		current, known := 0, true
		for _, rot := range k.rotations {
			if !rot.OK {
				known = false
			}
			current = max(current, rot.Gen)
		}
		if !known {
			continue
		}
		var tried, worked int
		var last *Record
		for _, r := range byKey[name] {
			if r.Gen != current || r.Start.Before(quiet) || !k.good(r, b) {
				continue
			}
			tried++
			if r.Status == 200 || r.Status == 429 {
				worked++
			}
			last = r
		}
		if tried > 0 && worked == 0 {
			rep.Violations = append(rep.Violations, Violation{Kind: KindKeyLost, Key: name, Replica: last.Replica, Start: quiet, End: last.End,
				Detail: fmt.Sprintf("secret %d refused all %d requests after the faults stopped (last: %d %s)", current, tried, last.Status, last.Code)})
		}
	}
}
