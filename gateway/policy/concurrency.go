package policy

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/quota"
)

// A concurrency limit counts the requests a key has in flight, and a
// request stays in flight as long as it lasts, while a slot that a replica
// held when it died must come back by itself. So the counter is a quota
// counter that starts over every concurrencyWindow (a dead replica's slots
// end with it), and each replica counts the slots it still holds again in
// the next window, rebookLead before that window starts, so that no
// restart forgets a request in flight. For the same reason the counter's
// key holds the ID of the peer list (quota.Engine.PeerList): when the list
// changes, the counter's owner may change, and the new owner never counted
// the requests in flight; each replica then counts its slots again under
// the new ID, at once (docs/design.md, section 12.3).
//
// The cost: one Settle per key with requests in flight, per replica and
// window, and one more counter in a request's TakeAll in the last
// rebookLead of a window. What stays inexact: the moment between a peer
// list change and the other replicas' counting again (they learn of it
// independently, within their discovery's delay), and the slots of a
// replica that died or stalled, which stay counted until their window
// ends, at most concurrencyWindow + rebookLead, refusing below the limit.
const (
	concurrencyWindow = 20 * time.Second
	rebookLead        = 5 * time.Second
)

// concurrencyWindowAt is the concurrency counters' window at now, as the
// quota engine aligns it.
func concurrencyWindowAt(now time.Time) (start, end time.Time) {
	start, end, _ = quota.Counter{Key: "concurrent", Window: concurrencyWindow}.Span(now)
	return start, end
}

// concurrencyWindowsAt are the windows a slot held at now is counted in:
// the current one, and from rebookLead before it starts the next.
func concurrencyWindowsAt(now time.Time) []time.Time {
	start, end := concurrencyWindowAt(now)
	if now.Before(end.Add(-rebookLead)) {
		return []time.Time{start}
	}
	return []time.Time{start, end}
}

// concurrencyCounter is the key's concurrency counter in the window that
// starts at start, under the peer list peers.
func concurrencyCounter(base quota.Counter, peers string, start time.Time) quota.Counter {
	c := base
	if peers != "" {
		c.Key += "@" + peers
	}
	c.At = start
	return c
}

// booking is a window, under one peer list, that a slot is counted in.
type booking struct {
	peers string
	start time.Time
}

// slot is one admitted request's concurrency slot.
type slot struct {
	base quota.Counter // the key's counter, without peer list or window
	in   []booking     // guarded by slots.mu
}

// slots are the concurrency slots this replica's requests hold.
type slots struct {
	engine  *Engine
	clock   clock.PassiveClock
	log     *slog.Logger
	metrics *Metrics

	mu   sync.Mutex
	held map[*slot]struct{}
}

func newSlots(engine *Engine, clk clock.PassiveClock, log *slog.Logger, metrics *Metrics) *slots {
	return &slots{engine: engine, clock: clk, log: log, metrics: metrics, held: map[*slot]struct{}{}}
}

// hold records the slot of a request the engine admitted, counted in the
// windows taken, and counts it in what else it should be counted in now:
// a window or peer list that the rebooking below moved to between the
// request's take and now, without this slot.
func (s *slots) hold(base quota.Counter, taken []booking) *slot {
	sl := &slot{base: base, in: taken}
	s.mu.Lock()
	s.held[sl] = struct{}{}
	s.mu.Unlock()
	counts := s.engine.get()
	if counts == nil {
		return sl
	}
	peers, _ := counts.PeerList()
	s.book(counts, peers, s.clock.Now(), sl)
	return sl
}

// release gives back a slot: in each window it is counted in that has not
// ended, under the current peer list. Counts under an earlier list are
// left alone: the current list routes that key to a replica that may not
// be the one that counted it.
func (s *slots) release(ctx context.Context, sl *slot) {
	s.mu.Lock()
	delete(s.held, sl)
	in := slices.Clone(sl.in)
	s.mu.Unlock()
	counts := s.engine.get()
	if counts == nil {
		return
	}
	peers, _ := counts.PeerList()
	now := s.clock.Now()
	for _, b := range in {
		if b.peers != peers || !now.Before(b.start.Add(concurrencyWindow)) {
			continue
		}
		s.settle(ctx, counts, concurrencyCounter(sl.base, b.peers, b.start), -1)
	}
}

// book counts the slot only, or with only nil every slot held, in the
// windows of now under peers where it is not counted yet: one Settle per
// counter and window, of the slots it lacks. Settling, not taking: a slot
// already admitted is counted whatever the limit.
func (s *slots) book(counts Counts, peers string, now time.Time, only *slot) {
	type target struct {
		key   string
		start time.Time
	}
	type shortfall struct {
		base quota.Counter
		n    int64
	}
	var missing map[target]*shortfall
	windows := concurrencyWindowsAt(now)
	add := func(sl *slot) {
		// Windows that have ended count nothing any more.
		sl.in = slices.DeleteFunc(sl.in, func(b booking) bool { return !now.Before(b.start.Add(concurrencyWindow)) })
		for _, w := range windows {
			b := booking{peers: peers, start: w}
			if slices.Contains(sl.in, b) {
				continue
			}
			sl.in = append(sl.in, b)
			if missing == nil {
				missing = map[target]*shortfall{}
			}
			t := target{sl.base.Key, w}
			if missing[t] == nil {
				missing[t] = &shortfall{base: sl.base}
			}
			missing[t].n++
		}
	}
	s.mu.Lock()
	if only != nil {
		if _, ok := s.held[only]; ok {
			add(only)
		}
	} else {
		for sl := range s.held {
			add(sl)
		}
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), rebookLead)
	defer cancel()
	for t, m := range missing {
		s.settle(ctx, counts, concurrencyCounter(m.base, peers, t.start), m.n)
		s.metrics.slotsRebooked(m.n)
	}
}

func (s *slots) settle(ctx context.Context, counts Counts, c quota.Counter, delta int64) {
	if _, err := counts.Settle(ctx, c, delta); err != nil {
		s.metrics.engineError()
		s.log.Warn("Quota engine unavailable: a concurrency slot is not counted", "counter", c.Key, "window", c.At, "delta", delta, "error", err)
	}
}

// Run counts the held slots again whenever the peer list changes, and in
// the next window rebookLead before it starts, until ctx ends. It waits
// for the engine to start.
func (s *slots) Run(ctx context.Context, clk clock.Clock) {
	select {
	case <-ctx.Done():
		return
	case <-s.engine.Started():
	}
	counts := s.engine.get()
	for {
		peers, changed := counts.PeerList()
		now := clk.Now()
		s.book(counts, peers, now, nil)
		// Wake at the next window's rebookLead, or the window's after.
		_, end := concurrencyWindowAt(now)
		wake := end.Add(-rebookLead)
		if !now.Before(wake) {
			wake = wake.Add(concurrencyWindow)
		}
		timer := clk.NewTimer(wake.Sub(now))
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-changed:
		case <-timer.C():
		}
		timer.Stop()
	}
}
