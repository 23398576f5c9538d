package quota

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

// ownerOf returns the index of the engine that owns c now, as engines[0]
// sees it.
func ownerOf(t *testing.T, engines []*Engine, c Counter) int {
	t.Helper()
	start, _, err := c.Span(engines[0].clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	p, err := engines[0].instance.GetPeer(context.Background(), counterName+"_"+uniqueKey(c.Key, start))
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(engines, func(e *Engine) bool { return e.Addr() == p.Info().GRPCAddress })
	if i < 0 {
		t.Fatalf("owner %s of %s is none of the engines", p.Info().GRPCAddress, c.Key)
	}
	return i
}

// countedByOwner is what c's owner counts in the current window: hits,
// and the leases it granted.
func countedByOwner(t *testing.T, owner *Engine, c Counter) int64 {
	t.Helper()
	return c.Limit - take(t, owner, c, 0).Remaining
}

// waitForSyncs waits until no lease renewal or give-back is running. Only
// call it while nothing takes.
func waitForSyncs(engines ...*Engine) {
	for _, e := range engines {
		e.syncs.Wait()
	}
}

// leaseOf returns e's lease of c in the current window, or nil.
func leaseOf(e *Engine, c Counter) *lease {
	start, _, _ := c.Span(e.clock.Now())
	return e.leases.get(leaseKey{key: c.Key, start: start.UnixMilli()})
}

// unusedLeases is what the engines hold of c in leases, and owe back.
func unusedLeases(engines []*Engine, c Counter) int64 {
	var n int64
	for _, e := range engines {
		if l := leaseOf(e, c); l != nil && l.size > 0 {
			l.mu.Lock()
			n += l.balance + l.owed
			l.mu.Unlock()
		}
	}
	return n
}

// Many goroutines per replica drive a leased counter far past its limit:
// no more than the limit is admitted, and no less than the limit minus
// what one renewal per replica can strand.
func TestLeasesNeverAdmitMoreThanTheLimit(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	for _, limit := range []int64{600, 3000} {
		c := Counter{Key: fmt.Sprintf("team-a/ci/rpm-%d", limit), Limit: limit, Window: time.Minute}
		size := leaseSize(limit, 3)
		var admitted, sent atomic.Int64
		var wg sync.WaitGroup
		for _, e := range engines {
			for range 20 {
				wg.Go(func() {
					for sent.Add(1) <= 3*limit {
						if take(t, e, c, 1).Allowed {
							admitted.Add(1)
						}
					}
				})
			}
		}
		wg.Wait()
		waitForSyncs(engines...)
		got := admitted.Load()
		if got > limit {
			t.Errorf("limit %d: admitted %d over 3 replicas", limit, got)
		}
		if got < limit-2*size {
			t.Errorf("limit %d: admitted %d, want at least %d (limit - 2 leases of %d)", limit, got, limit-2*size, size)
		}
		owner := engines[ownerOf(t, engines, c)]
		if counted, unused := countedByOwner(t, owner, c), unusedLeases(engines, c); counted != got+unused {
			t.Errorf("limit %d: the owner counts %d, want the %d admitted + %d unused in leases", limit, counted, got, unused)
		}
	}
}

// Load that stops mid-window leaves what the leases hold unused: at most
// one lease per replica that does not own the counter.
func TestUnderAdmissionAtTheWindowEndIsAtMostTheLeases(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	engines := newCluster(t, 3, Config{Clock: clk})
	c := Counter{Key: "team-a/ci/rpm", Limit: 1500, Window: time.Minute}
	size := leaseSize(c.Limit, 3) // 10
	owner := engines[ownerOf(t, engines, c)]

	if got := admitConcurrently(t, engines, c, 601); got != 601 {
		t.Fatalf("admitted %d of 601 under a limit of 1500", got)
	}
	waitForSyncs(engines...)
	stranded := countedByOwner(t, owner, c) - 601
	if stranded < 0 || stranded > 2*size {
		t.Errorf("the owner counts %d more than was admitted; leases may strand 0 to %d", stranded, 2*size)
	}
	if unused := unusedLeases(engines, c); unused != stranded {
		t.Errorf("the leases hold %d, the owner counts %d unused", unused, stranded)
	}
	// The owner's own takes are never leased.
	if l := leaseOf(owner, c); l != nil && l.size != 0 {
		t.Errorf("the owner leased its own counter: %+v", l)
	}
}

// When the owner cannot grant a top-up, takes go to it exactly, and the
// last units of the window are still admitted.
func TestRefusedLeaseFallsBackToExactTakes(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := Counter{Key: "team-a/ci/rpm", Limit: 1500, Window: time.Minute}
	size := leaseSize(c.Limit, 3) // 10
	o := ownerOf(t, engines, c)
	owner, leaser := engines[o], engines[(o+1)%3]

	// The leaser's first take leases size units with its hit.
	if d := take(t, leaser, c, 1); !d.Allowed || d.Remaining != c.Limit-1 {
		t.Fatalf("first take: %+v", d)
	}
	if counted := countedByOwner(t, owner, c); counted != 1+size {
		t.Fatalf("the owner counts %d after a leased take, want %d", counted, 1+size)
	}
	// The owner's own traffic leaves 3 units: fewer than a top-up.
	if d := take(t, owner, c, c.Limit-1-size-3); !d.Allowed {
		t.Fatalf("owner's take: %+v", d)
	}
	admitted := 0
	for range 20 {
		if take(t, leaser, c, 1).Allowed {
			admitted++
		}
		waitForSyncs(leaser) // renewals are refused: run them to the end
	}
	if want := int(size) + 3; admitted != want {
		t.Errorf("admitted %d after the owner ran low, want the lease's %d and the last 3 exactly", admitted, want)
	}
	if counted := countedByOwner(t, owner, c); counted != c.Limit {
		t.Errorf("the owner counts %d, want the limit %d", counted, c.Limit)
	}
	if l := leaseOf(leaser, c); !l.refused {
		t.Error("the lease is not marked refused")
	}
}

// keyOwnedByEngine returns a counter like c whose owner, now, is engines[i].
func keyOwnedByEngine(t *testing.T, engines []*Engine, i int, c Counter) Counter {
	t.Helper()
	for n := range 1000 {
		c.Key = fmt.Sprintf("team-a/ci-%d/rpm", n)
		if ownerOf(t, engines, c) == i {
			return c
		}
	}
	t.Fatal("no key with the wanted owner")
	return c
}

// A lease is for one counter in one window under one peer list.
func TestLeasesAreDroppedAtTheWindowEndAndOnPeerChanges(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	engines := newCluster(t, 3, Config{Clock: clk})
	owner, leaser := engines[0], engines[1]
	limit := int64(1200)
	size3, size2 := leaseSize(limit, 3), leaseSize(limit, 2) // 8, 12

	c := keyOwnedByEngine(t, engines, 0, Counter{Limit: limit, Window: time.Minute})
	take(t, leaser, c, 1)
	if counted := countedByOwner(t, owner, c); counted != 1+size3 {
		t.Fatalf("the owner counts %d, want %d", counted, 1+size3)
	}
	first := leaseOf(leaser, c)

	// The next window is a new counter with a new lease; the old lease is
	// not used, and goes at the next sweep.
	clk.SetTime(testStart.Add(time.Minute))
	take(t, leaser, c, 1)
	if o := ownerOf(t, engines, c); o != 1 {
		if counted := countedByOwner(t, engines[o], c); counted != 1+size3 {
			t.Errorf("new window: the owner counts %d, want %d (a new lease)", counted, 1+size3)
		}
	}
	clk.SetTime(testStart.Add(3 * time.Minute))
	take(t, leaser, c, 1)
	if !first.dropped {
		t.Error("the first window's lease was not dropped by the sweep")
	}
	clk.SetTime(testStart)
	if leaseOf(leaser, c) != nil {
		t.Error("the first window's lease is still in the table")
	}

	// The same peer list again keeps the leases; another one drops them.
	clk.SetTime(testStart.Add(4 * time.Minute))
	c = keyOwnedByEngine(t, engines, 0, c)
	take(t, leaser, c, 1)
	kept := leaseOf(leaser, c)
	leaser.SetPeers([]string{engines[2].Addr(), engines[0].Addr(), engines[1].Addr()})
	if leaseOf(leaser, c) != kept || kept.dropped {
		t.Fatal("setting the same peer list dropped the lease")
	}
	for _, e := range engines[:2] {
		e.SetPeers([]string{engines[0].Addr(), engines[1].Addr()})
	}
	if !kept.dropped || leaseOf(leaser, c) != nil {
		t.Fatal("a new peer list kept the lease")
	}
	// Consistent hashing moves only the removed replica's counters.
	if o := ownerOf(t, engines[:2], c); o != 0 {
		t.Fatalf("removing engines[2] moved the counter to engines[%d]", o)
	}
	before := countedByOwner(t, owner, c)
	take(t, leaser, c, 1)
	if counted := countedByOwner(t, owner, c); counted != before+1+size2 {
		t.Errorf("after the peer change the owner counts %d, want %d (a new lease sized for 2 replicas)", counted, before+1+size2)
	}
}

// Settlements of a leased counter go through the lease when they can; at
// any point the owner counts exactly what was used plus what the lease
// holds.
func TestSettlementsThroughALeaseKeepTheOwnersCount(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := keyOwnedByEngine(t, engines, 0, Counter{Limit: 6000, Window: time.Minute})
	owner, leaser := engines[0], engines[1]
	var used int64
	check := func(step string) {
		t.Helper()
		waitForSyncs(leaser)
		l := leaseOf(leaser, c)
		if counted := countedByOwner(t, owner, c); counted != used+l.balance {
			t.Fatalf("%s: the owner counts %d, want %d used + %d in the lease", step, counted, used, l.balance)
		}
		if l.balance+l.asked > l.size || l.owed != 0 {
			t.Fatalf("%s: lease %d+%d of %d, owing %d", step, l.balance, l.asked, l.size, l.owed)
		}
	}
	steps := []struct {
		name  string
		run   func() (Decision, error)
		delta int64
	}{
		{"reserve 30 (leases 40)", func() (Decision, error) { return leaser.Take(context.Background(), c, 30) }, 30},
		{"refund 25, more than fits", func() (Decision, error) { return leaser.Settle(context.Background(), at(c, testStart), -25) }, -25},
		{"reserve 30 from the lease", func() (Decision, error) { return leaser.Take(context.Background(), c, 30) }, 30},
		{"overdraw 8 from the lease", func() (Decision, error) { return leaser.Settle(context.Background(), at(c, testStart), 8) }, 8},
		{"overdraw 50, more than it holds", func() (Decision, error) { return leaser.Settle(context.Background(), at(c, testStart), 50) }, 50},
		{"refund 3 into the lease", func() (Decision, error) { return leaser.Settle(context.Background(), at(c, testStart), -3) }, -3},
		{"refund 4 into the lease", func() (Decision, error) { return leaser.Settle(context.Background(), at(c, testStart), -4) }, -4},
	}
	for _, s := range steps {
		d, err := s.run()
		if err != nil || !d.Allowed {
			t.Fatalf("%s: %+v, %v", s.name, d, err)
		}
		used += s.delta
		check(s.name)
		if want := c.Limit - used; d.Remaining != want {
			t.Errorf("%s: remaining %d, want %d", s.name, d.Remaining, want)
		}
	}
}

// A request refused by one counter gives its hits on a leased counter
// back to the lease: the owner counts only the lease.
func TestLeasedGiveBackOfARefusedRequest(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	tpm := keyOwnedByEngine(t, engines, 0, Counter{Limit: 6000, Window: time.Minute})
	budget := Counter{Key: "team-a/ci/budget", Limit: 10, Period: Month}
	leaser := engines[1]
	for i, hits := range []int64{30, 10} { // forwarded with a lease, then served by it
		ok, ds, err := leaser.TakeAll(context.Background(), Hit{tpm, hits}, Hit{budget, 11})
		if err != nil || ok || !ds[0].Allowed || ds[1].Allowed {
			t.Fatalf("request %d: want refused by the budget only, got ok=%v %+v %v", i, ok, ds, err)
		}
		if ds[0].Remaining != tpm.Limit {
			t.Errorf("request %d: tpm remaining %d after the give-back, want %d", i, ds[0].Remaining, tpm.Limit)
		}
		waitForSyncs(leaser)
		if counted, held := countedByOwner(t, engines[0], tpm), leaseOf(leaser, tpm).balance; counted != held {
			t.Errorf("request %d: the owner counts %d, the lease holds %d: a refused request counted", i, counted, held)
		}
	}
}

func at(c Counter, t time.Time) Counter {
	c.At = t
	return c
}

// A single replica owns every counter and leases from itself: its takes are
// served from the lease, never over the limit, and load that stops leaves
// at most one lease unused.
func TestSingleReplicaLeasesFromItself(t *testing.T) {
	e := newSingle(t, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := Counter{Key: "team-a/ci/rpm", Limit: 600, Window: time.Minute}
	size := leaseSize(c.Limit, 1) // 12
	if got := admitConcurrently(t, []*Engine{e}, c, 100); got != 100 {
		t.Fatalf("admitted %d of 100 under a limit of 600", got)
	}
	waitForSyncs(e)
	l := leaseOf(e, c)
	if l == nil || l.size != size {
		t.Fatalf("lease of a single replica's counter: %+v, want one of %d", l, size)
	}
	var admitted, sent atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			for sent.Add(1) <= 3*c.Limit {
				if take(t, e, c, 1).Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	waitForSyncs(e)
	if got := 100 + admitted.Load(); got > c.Limit || got < c.Limit-size {
		t.Errorf("admitted %d in the window, want %d at most and %d at least", got, c.Limit, c.Limit-size)
	}
}
