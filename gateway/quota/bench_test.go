package quota

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// keyOwnedBy returns a counter key whose owner, as e sees it, is (or is
// not) e itself. c.Key, if set, prefixes the key.
func keyOwnedBy(tb testing.TB, e *Engine, local bool, c Counter) Counter {
	tb.Helper()
	start, _, err := c.Span(e.clock.Now())
	if err != nil {
		tb.Fatal(err)
	}
	prefix := c.Key
	for i := range 1000 {
		c.Key = fmt.Sprintf("%sbench/%d", prefix, i)
		p, err := e.instance.GetPeer(context.Background(), counterName+"_"+uniqueKey(c.Key, start))
		if err != nil {
			tb.Fatal(err)
		}
		if p.Info().IsOwner == local {
			return c
		}
	}
	tb.Fatal("no key with the wanted owner")
	return c
}

// BenchmarkTake measures one Take per iteration, one at a time: the latency
// a request with a limit pays. p50 and p99 are reported next to the mean.
func BenchmarkTake(b *testing.B) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	counter := Counter{Limit: 1 << 62, Period: Month}
	run := func(b *testing.B, e *Engine, c Counter) {
		ctx := context.Background()
		lat := make([]time.Duration, 0, 1<<16)
		b.ReportAllocs()
		for b.Loop() {
			t0 := time.Now()
			if _, err := e.Take(ctx, c, 1); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
	}

	b.Run("single-replica", func(b *testing.B) {
		e := newSingle(b, Config{Clock: clk})
		run(b, e, Counter{Key: "bench/0", Limit: counter.Limit, Period: counter.Period})
	})
	b.Run("owner", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		run(b, es[0], keyOwnedBy(b, es[0], true, counter))
	})
	b.Run("remote-owner", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		run(b, es[0], keyOwnedBy(b, es[0], false, counter))
	})
	// A rate limit (a window of a minute) owned by the other replica: after
	// the first take, which leases, takes are served from the lease.
	leased := Counter{Limit: 1 << 40, Window: time.Minute}
	b.Run("remote-owner-leased", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		run(b, es[0], keyOwnedBy(b, es[0], false, leased))
	})
	// The same from every core at once: the lease's mutex is the only
	// point of contention.
	b.Run("remote-owner-leased-parallel", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		c := keyOwnedBy(b, es[0], false, leased)
		take(b, es[0], c, 1)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := es[0].Take(context.Background(), c, 1); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("remote-owner-batched-500us", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk, batchWait: 500 * time.Microsecond})
		run(b, es[0], keyOwnedBy(b, es[0], false, counter))
	})
	b.Run("take-all-rpm-tpm-leased", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		ctx := context.Background()
		rpm := keyOwnedBy(b, es[0], false, leased)
		tpm := leased
		tpm.Key = "tpm/"
		tpm = keyOwnedBy(b, es[0], false, tpm)
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := es[0].TakeAll(ctx, Hit{rpm, 1}, Hit{tpm, 39}); err != nil {
				b.Fatal(err)
			}
			if _, err := es[0].Settle(ctx, tpm, -29); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("take-all-3-remote", func(b *testing.B) {
		es := newCluster(b, 2, Config{Clock: clk})
		ctx := context.Background()
		hits := []Hit{
			{keyOwnedBy(b, es[0], false, Counter{Limit: 1 << 62, Window: time.Minute}), 1},
			{keyOwnedBy(b, es[0], false, Counter{Limit: 1 << 62, Window: time.Minute}), 100},
			{keyOwnedBy(b, es[0], true, counter), 1},
		}
		hits[1].Counter.Key += "/tpm"
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := es[0].TakeAll(ctx, hits...); err != nil {
				b.Fatal(err)
			}
		}
	})
}
