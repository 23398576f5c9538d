package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// Three replicas record the use of one key: lastUsedAt is the time of a
// use (not of the write), is written once an interval has passed, never
// moves backwards, and lags constant use by at most one interval. The
// replicas share a fake clock that the test steps through the intervals.
func TestLastUsedIsRecordedAndNeverMovesBackwards(t *testing.T) {
	env.StartManager(t, manager.Options{})
	clk := testenv.FakeClock(t)
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	const interval = 30 * time.Second
	var replicas []*gateway
	for range 3 {
		replicas = append(replicas, startGateway(t, server.Options{Providers: providers, LastUsedInterval: interval, Clock: clk}))
	}
	ns := env.Namespace(t)
	k, key := env.IssueKey(t, ns, "busy")
	if k.Status.LastUsedAt != nil {
		t.Fatalf("lastUsedAt = %v before any use", k.Status.LastUsedAt)
	}

	firstUse := clk.Now()
	if status, _, _ := chat(t, replicas[0].URL, key.Reveal()); status != http.StatusOK {
		t.Fatal(status)
	}
	clk.Step(interval)
	testenv.Eventually(t, 5*time.Second, func() error {
		stored := get(t, ns, "busy").Status.LastUsedAt
		if stored == nil {
			return fmt.Errorf("lastUsedAt not written one interval after the first use")
		}
		if stored.Time.Before(firstUse.Truncate(time.Second)) || !stored.Time.Before(firstUse.Add(interval)) {
			t.Fatalf("lastUsedAt = %v, want the time of the first use, %v", stored.Time, firstUse)
		}
		return nil
	})

	// Use the key on all replicas through a dozen intervals, sampling the
	// stored value: it must never go backwards.
	var previous, lastUse time.Time
	for i := range 24 {
		lastUse = clk.Now()
		if status, _, _ := chat(t, replicas[i%len(replicas)].URL, key.Reveal()); status != http.StatusOK {
			t.Fatal(status)
		}
		clk.Step(interval / 2)
		stored := get(t, ns, "busy").Status.LastUsedAt.Time
		if stored.Before(previous) {
			t.Fatalf("lastUsedAt moved backwards from %v to %v", previous, stored)
		}
		previous = stored
	}
	clk.Step(interval) // every replica's next flush
	testenv.Eventually(t, 5*time.Second, func() error {
		stored := get(t, ns, "busy").Status.LastUsedAt.Time
		if stored.Before(previous) {
			t.Fatalf("lastUsedAt moved backwards from %v to %v", previous, stored)
		}
		if lag := lastUse.Sub(stored); lag > interval+time.Second {
			return fmt.Errorf("lastUsedAt %v lags the last use by %v; want within one interval (%v)", stored, lag, interval)
		}
		return nil
	})
}
