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
// and move it past a deadline with AdvanceUntil, StepTo or Step instead of
// waiting the deadline out.
//
// Between steps it keeps pace with real time (it is stepped every 10ms
// until the test ends), so the short waits of the code under test pass as
// they would in production: a retry's backoff, a requeue after a stale
// cache read, a tarpit's delay, a last-use flush. A test's step only ever
// adds to that, so the clock never goes backwards.
//
// The API server's clock cannot be faked: creationTimestamp, and so a
// TTL's resolved expiry or a reveal window's end, is server time. Move the
// clock to a deadline read from the object, never by a duration guessed
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

// StepTo moves fc forward to at in one step, firing every timer due by
// then; a time fc has already passed leaves it where it is. Use it where
// nothing arms a timer from the clock while the test steps it (a gateway's
// authentication reads the clock per request); for the manager, use
// AdvanceUntil.
func StepTo(fc *testingclock.FakeClock, at time.Time) {
	if d := at.Sub(fc.Now()); d > 0 {
		fc.Step(d)
	}
}

// AdvanceUntil moves fc forward to at, and on past it, until cond returns
// nil. It fails the test if cond holds before fc has reached at (whatever
// cond waits for happened early), or if it does not hold within timeout
// of real time.
//
// The clock moves in steps of a twentieth of the way to at (a second at
// least), with 20ms of real time after each, rather than in one jump: code
// that reads the clock and a moment later arms a timer from what it read
// (a work queue scheduling a RequeueAfter) would otherwise miss a jump
// that landed in between by its whole length, and wait an hour for an
// expiry that is due now. With steps, it is late by one step, which the
// next step makes up.
func AdvanceUntil(t testing.TB, fc *testingclock.FakeClock, at time.Time, timeout time.Duration, cond func() error) {
	t.Helper()
	step := max(at.Sub(fc.Now())/20, time.Second)
	deadline := time.Now().Add(timeout)
	for {
		reached := !fc.Now().Before(at)
		err := cond()
		if err == nil {
			if !reached {
				t.Fatalf("the condition held at %v, before %v", fc.Now(), at)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v of real time (clock at %v, %v past %v): %v", timeout, fc.Now(), fc.Now().Sub(at), at, err)
		}
		fc.Step(step)
		time.Sleep(20 * time.Millisecond)
	}
}
