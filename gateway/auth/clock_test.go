package auth

import (
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestForwardClockNeverGoesBack(t *testing.T) {
	start := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	fake := clocktesting.NewFakeClock(start)
	c := newForwardClock(fake)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now = %v, want %v", got, start)
	}
	fake.Step(time.Minute)
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("after a step forward Now = %v, want %v", got, start.Add(time.Minute))
	}
	fake.SetTime(start.Add(-time.Hour))
	if got := c.Now(); !got.Equal(start.Add(time.Minute)) {
		t.Fatalf("after a step back Now = %v, want it held at %v", got, start.Add(time.Minute))
	}
	if got := c.Since(start); got != time.Minute {
		t.Fatalf("Since agrees with the underlying clock (%v), not with Now (want 1m)", got)
	}
	fake.SetTime(start.Add(2 * time.Minute))
	if got := c.Now(); !got.Equal(start.Add(2 * time.Minute)) {
		t.Fatalf("once the clock passes the held time again Now = %v, want %v", got, start.Add(2*time.Minute))
	}
}

func BenchmarkForwardClockNow(b *testing.B) {
	c := newForwardClock(clocktesting.NewFakeClock(time.Now()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Now()
		}
	})
}
