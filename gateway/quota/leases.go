package quota

import (
	"context"
	"sync"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

// maxLeases bounds the lease table (about 200 bytes a counter); past it,
// new counters are taken exactly until the next sweep frees room.
const maxLeases = 100_000

// leaseCallTimeout bounds a background renewal or give-back: the owner
// may be gone, and the next take that needs one starts another.
const leaseCallTimeout = 5 * time.Second

// leaseKey names a counter in one window, like uniqueKey, without building
// a string on every take.
type leaseKey struct {
	key   string
	start int64 // unix ms
}

// leaseTable holds this replica's leases for the current peer list. It
// also remembers the counters this replica owns, as leases of size 0, so
// that the owner is hashed once per counter and window, not per take.
type leaseTable struct {
	mu      sync.RWMutex
	leases  map[leaseKey]*lease
	sweepAt time.Time
}

func newLeaseTable() *leaseTable { return &leaseTable{leases: map[leaseKey]*lease{}} }

func (t *leaseTable) get(k leaseKey) *lease {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.leases[k]
}

// put adds l unless a lease for the same counter, window and limit got there
// first, and returns the one in the table; nil when the table is full.
func (t *leaseTable) put(k leaseKey, l *lease, now time.Time) *lease {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old := t.leases[k]; old != nil {
		if old.limit == l.limit {
			return old
		}
		// The limit changed (an admin edited the key): the old lease was
		// sized for the old limit. Its units are forfeited.
		old.drop()
	}
	if !now.Before(t.sweepAt) || len(t.leases) >= maxLeases {
		t.sweep(now)
	}
	if len(t.leases) >= maxLeases {
		return nil
	}
	t.leases[k] = l
	return l
}

// sweep drops the leases of windows that have ended. Callers hold mu.
func (t *leaseTable) sweep(now time.Time) {
	for k, l := range t.leases {
		if !now.Before(l.end) {
			l.drop()
			delete(t.leases, k)
		}
	}
	t.sweepAt = now.Add(time.Minute)
}

// reset drops every lease: after a peer list change a counter's owner may
// be another replica, and which counters this one owns has changed.
func (t *leaseTable) reset() {
	t.mu.Lock()
	old := t.leases
	t.leases = map[leaseKey]*lease{}
	t.mu.Unlock()
	for _, l := range old {
		l.drop()
	}
}

// leaseFor returns this replica's lease of counter c in the window [start,
// end), making one if create is set; nil when the counter is not leased
// here: a window that is over or too long, a limit too small, or, among
// peers, a counter this replica owns (its takes are in-process already).
func (e *Engine) leaseFor(c Counter, start, end, now time.Time, create bool) *lease {
	if !now.Before(end) || end.Sub(start) > maxLeaseWindow {
		return nil
	}
	size := leaseSize(c.Limit, int(e.replicas.Load()))
	if size == 0 {
		return nil
	}
	k := leaseKey{key: c.Key, start: start.UnixMilli()}
	l := e.leases.get(k)
	if (l == nil || l.limit != c.Limit) && create {
		// Among peers the owner takes in-process, exactly. A single
		// replica owns every counter and leases from itself all the same:
		// a take from a lease is a mutex, one from gubernator a trip
		// through its worker pool, and through one replica that was most
		// of what a limit cost a request (docs/benchmarks.md, "Per-key policy").
		if e.peered {
			owned, err := e.ownsCounter(c.Key, start)
			if err != nil {
				return nil // taken exactly; the take reports the error
			}
			if owned {
				size = 0
			}
		}
		l = e.leases.put(k, newLease(size, c.Limit, end), now)
	}
	if l == nil || l.size == 0 || l.limit != c.Limit {
		return nil
	}
	return l
}

// ownsCounter reports whether this replica owns counter key in the window
// starting at start, under the current peer list.
func (e *Engine) ownsCounter(key string, start time.Time) (bool, error) {
	p, err := e.instance.GetPeer(context.Background(), counterName+"_"+uniqueKey(key, start))
	if err != nil {
		return false, err
	}
	return p.Info().IsOwner, nil
}

// startSync runs l's background sync (renewals and give-backs, see
// lease.nextSync) for counter c in the window starting at start, unless the
// engine is closing.
func (e *Engine) startSync(c Counter, start time.Time, l *lease) {
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.syncStopped {
		l.endSync()
		return
	}
	e.syncs.Add(1)
	go func() {
		defer e.syncs.Done()
		c.At = start
		for {
			giveBack, renewal := l.nextSync(e.clock.Now())
			if giveBack == 0 && renewal == 0 {
				return
			}
			if !e.syncOnce(c, start, l, giveBack, renewal) {
				l.endSync()
				return
			}
		}
	}()
}

// syncOnce makes one call of a lease's background sync and reports whether
// it got an answer.
func (e *Engine) syncOnce(c Counter, start time.Time, l *lease, giveBack, renewal int64) bool {
	ctx, cancel := context.WithTimeout(e.syncCtx, leaseCallTimeout)
	defer cancel()
	if giveBack > 0 {
		resps, err := e.send(ctx, []*guber.RateLimitReq{e.request(c, start, l.end, 0, -giveBack)})
		if err != nil {
			// The owner counted these units and nobody will use them.
			e.log.Warn("Failed to give back units of a quota lease", "counter", c.Key, "units", giveBack, "error", err)
			return false
		}
		l.gaveBack(giveBack, resps[0].Remaining)
		return true
	}
	resps, err := e.send(ctx, []*guber.RateLimitReq{e.request(c, start, l.end, renewal, 0)})
	if err != nil {
		l.abandon(renewal)
		e.log.Debug("Failed to renew a quota lease", "counter", c.Key, "error", err)
		return false
	}
	l.answered(renewal, resps[0].Status == guber.Status_UNDER_LIMIT, resps[0].Remaining)
	return true
}
