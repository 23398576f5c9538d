package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

// Hit is an amount to take from one counter: from 0 to MaxHits.
type Hit struct {
	Counter Counter
	Hits    int64
}

// MaxHits bounds one take: 2^53, so that a take, a limit and what a counter
// holds add up without overflow, and counts stay exact in gubernator's
// float64 arithmetic (its leaky bucket and metrics). No request of a real
// key comes close: a request's tokens are bounded by the body size and the
// models' maximum output, a dollar budget's nano-dollars by the price.
const MaxHits = 1 << 53

// ErrInvalidHit is a take of a negative amount or of more than MaxHits: a
// programming error in the caller, refused before anything is counted (a
// negative take would be applied as a refund, opening the counter).
var ErrInvalidHit = errors.New("quota: a take must be from 0 to MaxHits; refunds go through Settle")

// Take takes hits from c if they fit and refuses them whole otherwise
// (Decision.Allowed false, nothing counted). Zero hits reads the counter and
// is allowed while something remains. Hits outside 0..MaxHits are refused
// with ErrInvalidHit: give back with Settle.
func (e *Engine) Take(ctx context.Context, c Counter, hits int64) (Decision, error) {
	ok, ds, err := e.TakeAll(ctx, Hit{Counter: c, Hits: hits})
	if err != nil {
		return Decision{}, err
	}
	ds[0].Allowed = ok
	return ds[0], nil
}

// hitPlan is how one hit of a TakeAll is served.
type hitPlan struct {
	lease *lease // this replica's lease of the counter; nil if not leased
	topUp int64  // units asked of the owner for the lease along with the hits
	// forward: the owner is asked (the lease, if any, could not serve it).
	forward bool
	// taken: the hits were counted, by the lease or the owner, and are
	// given back if another counter refuses the request.
	taken bool
}

// TakeAll takes from several counters of one request (requests per minute,
// tokens per minute, budget) in one round: the request passes only if every
// counter admits its hits. When one refuses, what the others took is given
// back, so a refused request counts nowhere. Between the take and the give
// back a concurrent request may see the others lower than they end up; the
// error is always towards refusing, never towards admitting too much.
//
// Counters this replica holds a lease of are served from the lease when it
// covers the hits; the others are forwarded to their owners in one round.
func (e *Engine) TakeAll(ctx context.Context, hits ...Hit) (bool, []Decision, error) {
	for _, h := range hits {
		if h.Hits < 0 || h.Hits > MaxHits {
			return false, nil, fmt.Errorf("counter %q, %d hits: %w", h.Counter.Key, h.Hits, ErrInvalidHit)
		}
	}
	now := e.clock.Now()
	ds := make([]Decision, len(hits))
	plans := make([]hitPlan, len(hits))
	forwarded := 0
	for i, h := range hits {
		start, end, err := h.Counter.window(now)
		if err != nil {
			return false, nil, err
		}
		ds[i] = Decision{Limit: h.Counter.Limit, PeriodStart: start, ResetAt: end}
		p := &plans[i]
		p.lease = e.leaseFor(h.Counter, start, end, now, true)
		if p.lease != nil {
			var served, startSync bool
			served, ds[i].Remaining, startSync = p.lease.take(h.Hits)
			p.taken = served && h.Hits > 0
			if startSync {
				e.startSync(h.Counter, start, p.lease)
			}
			if served {
				ds[i].Allowed = true
				continue
			}
			if h.Hits > 0 {
				p.topUp = p.lease.askTopUp()
			}
		}
		p.forward = true
		forwarded++
	}
	var err error
	if forwarded > 0 {
		err = e.forward(ctx, hits, plans, ds)
	}
	allowed := err == nil
	for i := range hits {
		allowed = allowed && ds[i].Allowed
	}
	if !allowed {
		if gerr := e.giveBack(ctx, hits, plans, ds); gerr != nil {
			err = errors.Join(err, gerr)
		}
		if err != nil {
			return false, nil, err
		}
	}
	return allowed, ds, nil
}

// forward asks the owners for the hits planned to be forwarded, in one
// round, and records their answers in ds and plans. A take whose top-up
// did not fit is asked again without it when its hits alone fit, so the
// last units of a window are admitted exactly.
func (e *Engine) forward(ctx context.Context, hits []Hit, plans []hitPlan, ds []Decision) error {
	var idx []int
	for i, p := range plans {
		if p.forward {
			idx = append(idx, i)
		}
	}
	for len(idx) > 0 {
		reqs := make([]*guber.RateLimitReq, len(idx))
		for j, i := range idx {
			h, d := hits[i], ds[i]
			reqs[j] = e.request(h.Counter, d.PeriodStart, d.ResetAt, h.Hits+plans[i].topUp, 0)
		}
		resps, err := e.send(ctx, reqs)
		var again []int
		for j, i := range idx {
			p, h, r := &plans[i], hits[i].Hits, resps[j]
			if r == nil || r.Error != "" {
				if p.topUp > 0 {
					p.lease.abandon(p.topUp)
				}
				continue
			}
			granted := r.Status == guber.Status_UNDER_LIMIT
			ownerLeft := r.Remaining
			switch {
			case h == 0:
				// A read passes only if there is something left: a budget
				// checked with no estimate still refuses once it is spent.
				ds[i].Allowed = r.Remaining > 0
			case granted:
				ds[i].Allowed = true
				p.taken = true
			case p.topUp > 0 && r.Remaining >= h:
				again = append(again, i)
			}
			ds[i].Remaining = ownerLeft
			if p.lease != nil {
				ds[i].Remaining = p.lease.answered(p.topUp, granted, ownerLeft)
			}
			p.topUp = 0
		}
		if err != nil {
			return err
		}
		idx = again
	}
	return nil
}

// giveBack refunds the counters that took their hits after another
// counter of the same request refused, and corrects their decisions. A
// leased counter's hits go back to the lease.
func (e *Engine) giveBack(ctx context.Context, hits []Hit, plans []hitPlan, ds []Decision) error {
	var reqs []*guber.RateLimitReq
	var forwarded []int
	for i, p := range plans {
		if !p.taken {
			continue
		}
		h, d := hits[i], ds[i]
		if p.lease != nil {
			refunded, remaining, startSync := p.lease.refund(h.Hits)
			if startSync {
				e.startSync(h.Counter, d.PeriodStart, p.lease)
			}
			if refunded {
				ds[i].Remaining = remaining
				continue
			}
		}
		reqs = append(reqs, e.request(h.Counter, d.PeriodStart, d.ResetAt, 0, -h.Hits))
		forwarded = append(forwarded, i)
	}
	if len(reqs) == 0 {
		return nil
	}
	if _, err := e.send(ctx, reqs); err != nil {
		return fmt.Errorf("giving back hits of a refused request: %w", err)
	}
	for _, i := range forwarded {
		ds[i].Remaining += hits[i].Hits
	}
	return nil
}

// Settle adds delta to what c counts, whatever the limit: the difference
// between a reservation and the real usage, negative to give back, positive
// when the usage was higher than reserved, even if that overdraws the
// counter (Decision.Remaining then goes negative and takes refuse until the
// period ends). Set c.At to the reservation's Decision.PeriodStart.
//
// A leased counter settles against its lease when it can: a refund goes
// back into it, an overdraw the lease covers comes out of it.
func (e *Engine) Settle(ctx context.Context, c Counter, delta int64) (Decision, error) {
	now := e.clock.Now()
	start, end, err := c.window(now)
	if err != nil {
		return Decision{}, err
	}
	d := Decision{Allowed: true, Limit: c.Limit, PeriodStart: start, ResetAt: end}
	l := e.leaseFor(c, start, end, now, false)
	if l != nil && delta != 0 {
		var settled, startSync bool
		if delta < 0 {
			settled, d.Remaining, startSync = l.refund(-delta)
		} else {
			settled, d.Remaining, startSync = l.overdraw(delta)
		}
		if startSync {
			e.startSync(c, start, l)
		}
		if settled {
			return d, nil
		}
	}
	resps, err := e.send(ctx, []*guber.RateLimitReq{e.request(c, start, end, 0, delta)})
	if err != nil {
		return Decision{}, err
	}
	// A settlement is a read (hits 0) whose amount the owner applies after
	// answering, so the answer is the state before it.
	d.Remaining = resps[0].Remaining - delta
	if l != nil {
		d.Remaining = l.answered(0, true, d.Remaining)
	}
	return d, nil
}

// window validates c and returns its window or period at now (see span).
func (c Counter) window(now time.Time) (start, end time.Time, err error) {
	if c.Key == "" {
		return time.Time{}, time.Time{}, errors.New("counter has no key")
	}
	if c.Limit < 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("counter %q has a negative limit", c.Key)
	}
	return c.Span(now)
}

// request builds the gubernator request for c in the window [start, end).
// With settle non-zero it is a settlement (see hookStore) and hits must be
// zero.
func (e *Engine) request(c Counter, start, end time.Time, hits, settle int64) *guber.RateLimitReq {
	// CreatedAt is the period start rather than now: gubernator sets a new
	// item's expiry to CreatedAt+Duration, which makes it the period end.
	createdAt := start.UnixMilli()
	req := &guber.RateLimitReq{
		Name:      counterName,
		UniqueKey: uniqueKey(c.Key, start),
		Hits:      hits,
		Limit:     c.Limit,
		Duration:  end.Sub(start).Milliseconds(),
		Algorithm: guber.Algorithm_TOKEN_BUCKET,
		Behavior:  e.behavior,
		CreatedAt: &createdAt,
	}
	if settle != 0 {
		req.Metadata = map[string]string{settleMetadata: strconv.FormatInt(settle, 10)}
	}
	return req
}

// send runs one GetRateLimits call. Responses stay aligned with reqs; the
// error joins the per-counter errors (an unreachable owner, a refused
// credential), whose responses are nil or carry Error.
func (e *Engine) send(ctx context.Context, reqs []*guber.RateLimitReq) ([]*guber.RateLimitResp, error) {
	owners := e.ownersOf(ctx, reqs)
	calls := e.sends.enter()
	if floors := e.shadows.floors(reqs, owners); len(floors) > 0 {
		// Before the requests, in a call of their own: gubernator runs
		// the requests of one call concurrently. A floor that fails is
		// sent again with this replica's next request of the counter.
		if resp, err := e.instance.GetRateLimits(ctx, &guber.GetRateLimitsReq{Requests: floors}); err == nil {
			e.shadows.observe(floors, resp.Responses, e.ownersOf(ctx, floors))
		}
	}
	resp, err := e.instance.GetRateLimits(ctx, &guber.GetRateLimitsReq{Requests: reqs})
	calls.Done()
	if err != nil {
		return make([]*guber.RateLimitResp, len(reqs)), fmt.Errorf("counting: %w", err)
	}
	if e.shadows != nil {
		e.shadows.observe(reqs, resp.Responses, owners)
	}
	e.redialUnreachable(ctx, reqs, resp.Responses)
	var errs []error
	for i, r := range resp.Responses {
		if r == nil {
			errs = append(errs, fmt.Errorf("counter %s: no answer", reqs[i].UniqueKey))
		} else if r.Error != "" {
			errs = append(errs, fmt.Errorf("counter %s: %s", reqs[i].UniqueKey, r.Error))
		}
	}
	return resp.Responses, errors.Join(errs...)
}

// ownersOf returns the address of the owner of each budget among reqs
// (a period longer than maxLeaseWindow; shadowCounts.floors), and "" for
// the other counters. Nil for a single replica, which keeps no shadows.
func (e *Engine) ownersOf(ctx context.Context, reqs []*guber.RateLimitReq) []string {
	if e.shadows == nil {
		return nil
	}
	owners := make([]string, len(reqs))
	for i, r := range reqs {
		if r.Duration <= maxLeaseWindow.Milliseconds() {
			continue
		}
		if p, err := e.instance.GetPeer(ctx, r.HashKey()); err == nil {
			owners[i] = p.Info().GRPCAddress
		}
	}
	return owners
}
