package quota

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/gateway/mesh"
)

// testStart is in the future: gubernator drops items whose end has passed by
// the wall clock, so a fake clock must not run behind it (see Config.Clock).
var testStart = time.Date(2090, time.January, 31, 23, 59, 30, 0, time.UTC)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newSingle(t testing.TB, cfg Config) *Engine {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quietLog()
	}
	e, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// newPeered starts an engine on a mesh of its own, listening on a loopback
// port with cred's mutual TLS, as a gateway replica does.
func newPeered(t testing.TB, cfg Config, cred *mesh.Credential) *Engine {
	t.Helper()
	m, err := mesh.New(mesh.Config{Listen: "127.0.0.1:0", Credential: cred, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Mesh = m
	e := newSingle(t, cfg)
	m.Serve()
	t.Cleanup(m.Close)
	meshes.Store(e, m)
	return e
}

// meshes maps each engine of newPeered to its mesh, for stop.
var meshes sync.Map

// stop stops a replica whole: its counters and its peer listener.
func stop(e *Engine) {
	e.Close()
	if m, ok := meshes.Load(e); ok {
		m.(*mesh.Mesh).Close()
	}
}

// newCluster starts n engines on loopback ports that know each other as
// static peers.
func newCluster(t testing.TB, n int, cfg Config) []*Engine {
	t.Helper()
	cred, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	engines := make([]*Engine, n)
	addrs := make([]string, n)
	for i := range engines {
		engines[i] = newPeered(t, cfg, cred)
		addrs[i] = engines[i].Addr()
	}
	for _, e := range engines {
		e.SetPeers(addrs)
	}
	return engines
}

func take(t testing.TB, e *Engine, c Counter, hits int64) Decision {
	t.Helper()
	d, err := e.Take(context.Background(), c, hits)
	if err != nil {
		t.Fatalf("Take(%s, %d): %v", c.Key, hits, err)
	}
	return d
}

func settle(t testing.TB, e *Engine, c Counter, delta int64) Decision {
	t.Helper()
	d, err := e.Settle(context.Background(), c, delta)
	if err != nil {
		t.Fatalf("Settle(%s, %d): %v", c.Key, delta, err)
	}
	return d
}

// admitConcurrently sends total single-hit takes of c from 50 goroutines,
// spread round robin over engines, and returns how many were admitted.
func admitConcurrently(t *testing.T, engines []*Engine, c Counter, total int) int64 {
	t.Helper()
	var admitted, next atomic.Int64
	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				d, err := engines[i%int64(len(engines))].Take(context.Background(), c, 1)
				if err != nil {
					t.Errorf("Take: %v", err)
					return
				}
				if d.Allowed {
					admitted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return admitted.Load()
}

func TestSingleReplicaIsExact(t *testing.T) {
	e := newSingle(t, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	if e.peered {
		t.Fatal("a single replica has peers")
	}
	c := Counter{Key: "team-a/ci/rpm", Limit: 600, Window: time.Minute}
	if got := admitConcurrently(t, []*Engine{e}, c, 1800); got != 600 {
		t.Fatalf("admitted %d of 1800, want exactly 600", got)
	}
}

func TestThreeReplicasAreExact(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	// Several keys, so that each replica owns some and forwards others.
	var wg sync.WaitGroup
	for _, key := range []string{"team-a/ci/rpm", "team-b/web/rpm", "team-c/bot/rpm"} {
		wg.Go(func() {
			c := Counter{Key: key, Limit: 600, Window: time.Minute}
			if got := admitConcurrently(t, engines, c, 1800); got != 600 {
				t.Errorf("%s: admitted %d of 1800 over 3 replicas, want exactly 600", key, got)
			}
		})
	}
	wg.Wait()
}

func TestRefundAndOverdraw(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	// Run the same story through every replica, so it is told once by the
	// owner and twice through a peer.
	for i, e := range engines {
		c := Counter{Key: "team-a/ci/budget-" + string(rune('a'+i)), Limit: 100, Period: Month}

		if d := take(t, e, c, 100); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("replica %d: first take: %+v", i, d)
		}
		if d := take(t, e, c, 1); d.Allowed {
			t.Fatalf("replica %d: take past the limit allowed: %+v", i, d)
		}
		// A refund reopens the counter, and later takes report success
		// (gubernator alone would keep reporting OVER_LIMIT; see hookStore).
		if d := settle(t, e, c, -30); d.Remaining != 30 {
			t.Fatalf("replica %d: refund of 30 left %d, want 30", i, d.Remaining)
		}
		if d := take(t, e, c, 20); !d.Allowed || d.Remaining != 10 {
			t.Fatalf("replica %d: take after refund: %+v", i, d)
		}
		// A negative take is refused, not applied as a refund: it would
		// let a caller's overflowed reservation open the counter.
		if d, err := e.Take(context.Background(), c, -5); !errors.Is(err, ErrInvalidHit) {
			t.Fatalf("replica %d: negative take: %+v, %v; want ErrInvalidHit", i, d, err)
		}
		if _, err := e.Take(context.Background(), c, MaxHits+1); !errors.Is(err, ErrInvalidHit) {
			t.Fatalf("replica %d: take of MaxHits+1: %v; want ErrInvalidHit", i, err)
		}
		settle(t, e, c, -5)
		// The real usage was 40 more than reserved: counted in full.
		if d := settle(t, e, c, 40); !d.Allowed || d.Remaining != -25 {
			t.Fatalf("replica %d: overdraw: %+v, want remaining -25", i, d)
		}
		if d := take(t, e, c, 0); d.Allowed || d.Remaining != -25 {
			t.Fatalf("replica %d: read after overdraw: %+v", i, d)
		}
		if d := take(t, e, c, 1); d.Allowed {
			t.Fatalf("replica %d: take after overdraw allowed: %+v", i, d)
		}
		// Giving back 26 leaves exactly 1.
		settle(t, e, c, -26)
		if d := take(t, e, c, 1); !d.Allowed || d.Remaining != 0 {
			t.Fatalf("replica %d: take of the last unit: %+v", i, d)
		}
		if d := take(t, e, c, 1); d.Allowed {
			t.Fatalf("replica %d: take past the limit allowed: %+v", i, d)
		}
	}
}

func TestTakeAllRefundsTheOthersWhenOneRefuses(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	rpm := Counter{Key: "team-a/ci/rpm", Limit: 10, Window: time.Minute}
	// Limits too small to lease, so that every count is exact (leases:
	// TestLeasedGiveBackOfARefusedRequest).
	tpm := Counter{Key: "team-a/ci/tpm", Limit: 100, Window: time.Minute}
	budget := Counter{Key: "team-a/ci/budget", Limit: 100, Period: Month}
	ctx := context.Background()

	ok, ds, err := engines[0].TakeAll(ctx, Hit{rpm, 1}, Hit{tpm, 30}, Hit{budget, 60})
	if err != nil || !ok {
		t.Fatalf("first request: ok=%v err=%v %+v", ok, err, ds)
	}
	ok, ds, err = engines[1].TakeAll(ctx, Hit{rpm, 1}, Hit{tpm, 30}, Hit{budget, 60})
	if err != nil {
		t.Fatal(err)
	}
	if ok || ds[2].Allowed || !ds[0].Allowed || !ds[1].Allowed {
		t.Fatalf("second request: want refused by the budget only, got ok=%v %+v", ok, ds)
	}
	if ds[0].Remaining != 9 || ds[1].Remaining != 70 {
		t.Fatalf("second request: decisions not corrected after give-back: %+v", ds)
	}
	for _, want := range []struct {
		c         Counter
		remaining int64
	}{{rpm, 9}, {tpm, 70}, {budget, 40}} {
		if d := take(t, engines[2], want.c, 0); d.Remaining != want.remaining {
			t.Errorf("%s: remaining %d, want %d (refused request must count nowhere)", want.c.Key, d.Remaining, want.remaining)
		}
	}
}

func TestCalendarPeriodsResetOnTheEngineClock(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart) // 2090-01-31 23:59:30 UTC
	e := newSingle(t, Config{Clock: clk})
	month := Counter{Key: "k/month", Limit: 5, Period: Month}
	day := Counter{Key: "k/day", Limit: 5, Period: Day}
	minute := Counter{Key: "k/rpm", Limit: 5, Window: time.Minute}
	total := Counter{Key: "k/total", Limit: 5, Period: Total}

	for _, c := range []Counter{month, day, minute, total} {
		if d := take(t, e, c, 5); !d.Allowed {
			t.Fatalf("%s: %+v", c.Key, d)
		}
		if d := take(t, e, c, 1); d.Allowed {
			t.Fatalf("%s: past the limit allowed: %+v", c.Key, d)
		}
	}
	if d := take(t, e, month, 0); !d.ResetAt.Equal(time.Date(2090, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month resets at %s", d.ResetAt)
	}

	clk.SetTime(time.Date(2090, time.February, 1, 0, 0, 0, 0, time.UTC))
	for _, c := range []Counter{month, day, minute} {
		if d := take(t, e, c, 5); !d.Allowed || d.Remaining != 0 {
			t.Errorf("%s: not reset at the new period: %+v", c.Key, d)
		}
	}
	if d := take(t, e, total, 1); d.Allowed {
		t.Errorf("total reset with the calendar: %+v", d)
	}
	if d := take(t, e, month, 0); !d.ResetAt.Equal(time.Date(2090, 3, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("February resets at %s", d.ResetAt)
	}

	// A settlement for a reservation taken in January lands in January, not
	// in the fresh February counter.
	jan := month
	jan.At = time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC)
	settle(t, e, jan, -5)
	if d := take(t, e, month, 1); d.Allowed {
		t.Errorf("a January refund reopened February: %+v", d)
	}
}

// fakeUsage stands in for status.usage read from the informer cache.
type fakeUsage struct {
	mu    sync.Mutex
	spent map[string]int64
	start time.Time
}

func (u *fakeUsage) checkpoint(key string) (int64, time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, ok := u.spent[key]
	return n, u.start, ok
}

func TestCheckpointRestoresAfterAllReplicasRestart(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	usage := &fakeUsage{spent: map[string]int64{}, start: time.Date(2090, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := Config{Clock: clk, Checkpoint: usage.checkpoint}
	budget := Counter{Key: "team-a/ci/budget", Limit: 100, Period: Month}
	overspent := Counter{Key: "team-a/ci/overspent", Limit: 100, Period: Month}
	lastMonth := Counter{Key: "team-a/ci/last-month", Limit: 100, Period: Month}

	before := newCluster(t, 3, cfg)
	for _, e := range before {
		take(t, e, budget, 10)
	}
	// The gateway writes what it counted to status.usage.
	usage.mu.Lock()
	usage.spent[budget.Key] = 30
	usage.spent[overspent.Key] = 130
	usage.spent[lastMonth.Key] = 90
	usage.mu.Unlock()
	for _, e := range before {
		stop(e)
	}

	after := newCluster(t, 3, cfg)
	if d := take(t, after[1], budget, 5); !d.Allowed || d.Remaining != 65 {
		t.Errorf("budget after restart: %+v, want 65 remaining (100-30-5)", d)
	}
	if d := take(t, after[2], overspent, 1); d.Allowed || d.Remaining != -30 {
		t.Errorf("overspent budget after restart: %+v, want refused with -30", d)
	}

	// The same checkpoint is stale once the month has changed.
	clk.SetTime(time.Date(2090, time.February, 1, 0, 0, 1, 0, time.UTC))
	if d := take(t, after[0], lastMonth, 1); !d.Allowed || d.Remaining != 99 {
		t.Errorf("a January checkpoint counted in February: %+v", d)
	}
}

// An admin raising a key's limit mid-window: the next hits are admitted at
// once, and counted, even though the counter had refused before.
func TestRaisingALimitAfterARefusal(t *testing.T) {
	e := newSingle(t, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	ctx := context.Background()
	c := Counter{Key: "team-a/ci/rpm", Limit: 3, Window: time.Minute}
	for i := range 4 {
		d, err := e.Take(ctx, c, 1)
		if err != nil || d.Allowed != (i < 3) {
			t.Fatalf("take %d at limit 3: %+v, %v", i, d, err)
		}
	}
	c.Limit = 5
	for i := range 3 {
		d, err := e.Take(ctx, c, 1)
		if err != nil || d.Allowed != (i < 2) {
			t.Errorf("take %d after raising the limit to 5: %+v, %v; want the first two admitted", i, d, err)
		}
	}
}

// When a counter's owner dies mid-period and the counter moves to another
// replica, it resumes from what the owner last told that replica, not from
// zero: the period admits about its limit, not up to twice it.
func TestCounterResumesOnItsNewOwnerAfterTheOwnerDies(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := Counter{Key: "team-a/ci/rpm", Limit: 100, Window: time.Minute}
	owner := ownerOf(t, engines, c)
	var survivors []*Engine
	var addrs []string
	for i, e := range engines {
		if i != owner {
			survivors = append(survivors, e)
			addrs = append(addrs, e.Addr())
		}
	}

	// 60 admitted, round robin over all three replicas (so each survivor
	// has seen the owner's count recently), then the owner dies.
	admitted := 0
	for i := range 60 {
		if take(t, engines[i%3], c, 1).Allowed {
			admitted++
		}
	}
	stop(engines[owner])
	for _, e := range survivors {
		e.SetPeers(addrs)
	}
	for i := range 200 {
		if take(t, survivors[i%2], c, 1).Allowed {
			admitted++
		}
	}
	// The survivors' last answers from the owner were at most one of the
	// other replicas' takes behind.
	if admitted > 102 {
		t.Errorf("admitted %d in the period with a limit of 100 across the owner's death, want at most 102", admitted)
	}
	if admitted < 100 {
		t.Errorf("admitted %d, want the limit of 100", admitted)
	}
}

// A budget's owner leaves a replica's peer list and comes back, keeping
// the count it had (a replica stopped, then ready again: its own list
// always holds itself, so it never learns that it was out). The interim
// owner counted what was spent meanwhile; the returning owner takes that
// count from the replica's first request after the change, before the
// request itself, and the budget holds. Without it, the returning owner
// resumed from its old count and the period admitted what was spent
// while it was out twice (issue 28).
func TestBudgetOwnerThatLeavesAndReturnsTakesTheInterimCount(t *testing.T) {
	engines := newCluster(t, 2, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := budgetOwnedBy(t, engines, 1)
	a := engines[0]
	if d := take(t, a, c, 30); !d.Allowed {
		t.Fatalf("30 of 100 refused: %+v", d)
	}
	a.SetPeers([]string{a.Addr()}) // the owner leaves a's list
	if d := take(t, a, c, 40); !d.Allowed || d.Remaining != 30 {
		t.Fatalf("a, owning the counter, took 40 of the 70 left: %+v, want allowed with 30 left", d)
	}
	a.SetPeers([]string{a.Addr(), engines[1].Addr()}) // and is back
	if d := take(t, a, c, 40); d.Allowed {
		t.Errorf("40 more admitted with 30 of 100 left: the returning owner resumed from its count before it left (%+v)", d)
	}
	if d := take(t, a, c, 30); !d.Allowed || d.Remaining != 0 {
		t.Errorf("the last 30 of the budget: %+v, want allowed with nothing left", d)
	}
	// Settling after the change goes to the same count.
	if d := settle(t, a, c, -10); d.Remaining != 10 {
		t.Errorf("after giving back 10: %d left, want 10", d.Remaining)
	}
}

// A peer list change that leaves a budget with its owner hands nothing
// back: what another replica gave back since this replica's last answer
// stays given back (a floor is a count this replica heard, and counts
// again what was refunded after it).
func TestBudgetKeepsItsRefundsWhenThePeerListChangesAroundItsOwner(t *testing.T) {
	engines := newCluster(t, 3, Config{Clock: clocktesting.NewFakePassiveClock(testStart)})
	c := budgetOwnedBy(t, engines, 2)
	a, b := engines[0], engines[1]
	take(t, a, c, 50)
	settle(t, b, c, -40) // a reservation given back: 10 spent
	// b leaves a's list; the counter stays with its owner.
	a.SetPeers([]string{a.Addr(), engines[2].Addr()})
	if ownerOf(t, engines, c) != 2 {
		t.Fatal("the counter moved with b out of a's list")
	}
	if d := take(t, a, c, 1); !d.Allowed || d.Remaining != 89 {
		t.Errorf("after 10 spent and 1 more: %+v, want 89 left", d)
	}
}

// budgetOwnedBy is a budget counter of 100 a month whose owner is
// engines[owner].
func budgetOwnedBy(t *testing.T, engines []*Engine, owner int) Counter {
	t.Helper()
	for i := range 100 {
		c := Counter{Key: fmt.Sprintf("team-a/k%d/budget", i), Limit: 100, Period: Month}
		if ownerOf(t, engines, c) == owner {
			return c
		}
	}
	t.Fatalf("no counter of 100 is owned by replica %d", owner)
	return Counter{}
}
