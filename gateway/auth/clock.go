package auth

import (
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// forwardClock is the authenticator's clock: the wall clock, except that
// it never goes back. Expiry is decided on this replica's wall clock
// (keyindex.Entry.Usable), so a step back (an NTP correction, a restored
// VM snapshot) would otherwise serve a key again that this replica has
// already refused as expired, until the controller marked it Expired
// (docs/reliability.md, "Clock steps"). Holding the latest time seen keeps
// every expiry this replica has reached reached. A step forward still
// counts at once: it can only refuse sooner.
//
// Timers (AfterFunc, for a request that outlives its key) run on the
// underlying clock's own time base and are not affected.
type forwardClock struct {
	clock.WithDelayedExecution
	latest atomic.Int64 // UnixNano of the latest Now returned
}

func newForwardClock(c clock.WithDelayedExecution) *forwardClock {
	return &forwardClock{WithDelayedExecution: c}
}

// Now is the underlying clock's time, or the latest time returned before
// when that is later. A compare-and-swap rather than a mutex: Now runs
// several times per request on every core.
func (c *forwardClock) Now() time.Time {
	now := c.WithDelayedExecution.Now()
	n := now.UnixNano()
	for {
		latest := c.latest.Load()
		if n <= latest {
			return time.Unix(0, latest)
		}
		if c.latest.CompareAndSwap(latest, n) {
			return now
		}
	}
}

// Since is the time elapsed since t on this clock, so that it agrees with
// Now.
func (c *forwardClock) Since(t time.Time) time.Duration { return c.Now().Sub(t) }
