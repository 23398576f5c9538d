package testenv

import (
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// FakeClock is a clock for the manager, gateways and console of a test
// that needs time to pass faster than it does: a key's expiry, a reveal
// window, a session's lifetime. Share it with whatever the test starts
// (operator.Options.Clock, server.Options.Clock, console.Options.Clock)
// and move it past a deadline with Step or StepTo instead of waiting the
// deadline out.
//
// Between steps it keeps pace with real time (it is stepped every 10ms
// until the test ends), so the short waits of the code under test pass as
// they would in production: a retry's backoff, a requeue after a stale
// cache read, a tarpit's delay, a last-use flush. A test's step only ever
// adds to that, so the clock never goes backwards.
//
// The API server's clock cannot be faked: creationTimestamp, and so a
// TTL's resolved expiry or a reveal window's end, is server time. Step to
// a deadline read from the object (StepTo), never by a duration guessed
// from when the test created it.
func FakeClock(t testing.TB) *testingclock.FakeClock {
	fc := testingclock.NewFakeClock(time.Now())
	stop, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-tick.C:
				fc.Step(now.Sub(last))
				last = now
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-stopped
	})
	return fc
}

// StepTo moves fc forward to at, firing every timer and requeue due by
// then; a time fc has already passed leaves it where it is.
func StepTo(fc *testingclock.FakeClock, at time.Time) {
	if d := at.Sub(fc.Now()); d > 0 {
		fc.Step(d)
	}
}
