package quota

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	guber "github.com/gubernator-io/gubernator/v2"
)

// Hit is an amount to take from one counter.
type Hit struct {
	Counter Counter
	Hits    int64
}

// Take takes hits from c if they fit and refuses them whole otherwise
// (Decision.Allowed false, nothing counted). Zero hits reads the counter and
// is allowed while something remains. Negative hits are a refund and behave
// like Settle.
func (e *Engine) Take(ctx context.Context, c Counter, hits int64) (Decision, error) {
	ok, ds, err := e.TakeAll(ctx, Hit{Counter: c, Hits: hits})
	if err != nil {
		return Decision{}, err
	}
	ds[0].Allowed = ok
	return ds[0], nil
}

// TakeAll takes from several counters of one request (requests per minute,
// tokens per minute, budget) in one round: the request passes only if every
// counter admits its hits. When one refuses, what the others took is given
// back, so a refused request counts nowhere. Between the take and the give
// back a concurrent request may see the others lower than they end up; the
// error is always towards refusing, never towards admitting too much.
func (e *Engine) TakeAll(ctx context.Context, hits ...Hit) (bool, []Decision, error) {
	reqs := make([]*guber.RateLimitReq, len(hits))
	ds := make([]Decision, len(hits))
	for i, h := range hits {
		var err error
		if h.Hits < 0 {
			reqs[i], ds[i], err = e.request(h.Counter, 0, h.Hits)
		} else {
			reqs[i], ds[i], err = e.request(h.Counter, h.Hits, 0)
		}
		if err != nil {
			return false, nil, err
		}
	}
	resps, err := e.send(ctx, reqs)
	allowed := true
	var taken []int
	for i, r := range resps {
		if r == nil || r.Error != "" {
			continue
		}
		ds[i].Remaining = r.Remaining
		switch {
		case hits[i].Hits < 0:
			ds[i].Remaining -= hits[i].Hits
			ds[i].Allowed = true
		case hits[i].Hits == 0:
			// A read passes only if there is something left: a budget
			// checked with no estimate still refuses once it is spent.
			ds[i].Allowed = r.Remaining > 0
			allowed = allowed && ds[i].Allowed
		case r.Status == guber.Status_UNDER_LIMIT:
			ds[i].Allowed = true
			taken = append(taken, i)
		default:
			allowed = false
		}
	}
	if err != nil || !allowed {
		if len(taken) > 0 {
			if rerr := e.giveBack(ctx, hits, ds, taken); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if err != nil {
			return false, nil, err
		}
	}
	return allowed, ds, nil
}

// giveBack refunds the counters in taken after another counter of the same
// request refused, and corrects their decisions.
func (e *Engine) giveBack(ctx context.Context, hits []Hit, ds []Decision, taken []int) error {
	reqs := make([]*guber.RateLimitReq, len(taken))
	for j, i := range taken {
		c := hits[i].Counter
		c.At = ds[i].PeriodStart
		reqs[j], _, _ = e.request(c, 0, -hits[i].Hits) // validated by the take
	}
	_, err := e.send(ctx, reqs)
	if err != nil {
		return fmt.Errorf("giving back hits of a refused request: %w", err)
	}
	for _, i := range taken {
		ds[i].Remaining += hits[i].Hits
	}
	return nil
}

// Settle adds delta to what c counts, whatever the limit: the difference
// between a reservation and the real usage, negative to give back, positive
// when the usage was higher than reserved, even if that overdraws the
// counter (Decision.Remaining then goes negative and takes refuse until the
// period ends). Set c.At to the reservation's Decision.PeriodStart.
func (e *Engine) Settle(ctx context.Context, c Counter, delta int64) (Decision, error) {
	req, d, err := e.request(c, 0, delta)
	if err != nil {
		return Decision{}, err
	}
	resps, err := e.send(ctx, []*guber.RateLimitReq{req})
	if err != nil {
		return Decision{}, err
	}
	d.Allowed = true
	// A settlement is a read (hits 0) whose amount the owner applies after
	// answering, so the answer is the state before it.
	d.Remaining = resps[0].Remaining - delta
	return d, nil
}

// request builds the gubernator request for c. With settle non-zero it is a
// settlement (see hookStore) and hits must be zero.
func (e *Engine) request(c Counter, hits, settle int64) (*guber.RateLimitReq, Decision, error) {
	if c.Key == "" {
		return nil, Decision{}, errors.New("counter has no key")
	}
	if c.Limit < 0 {
		return nil, Decision{}, fmt.Errorf("counter %q has a negative limit", c.Key)
	}
	start, end, err := c.span(e.clock.Now())
	if err != nil {
		return nil, Decision{}, err
	}
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
	return req, Decision{Limit: c.Limit, PeriodStart: start, ResetAt: end}, nil
}

// send runs one GetRateLimits call. Responses stay aligned with reqs; the
// error joins the per-counter errors (an unreachable owner, a refused
// credential), whose responses are nil or carry Error.
func (e *Engine) send(ctx context.Context, reqs []*guber.RateLimitReq) ([]*guber.RateLimitResp, error) {
	resp, err := e.instance.GetRateLimits(ctx, &guber.GetRateLimitsReq{Requests: reqs})
	if err != nil {
		return make([]*guber.RateLimitResp, len(reqs)), fmt.Errorf("counting: %w", err)
	}
	if e.shadows != nil {
		e.shadows.observe(reqs, resp.Responses)
	}
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
