package server_test

import (
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// handOffs reads codevector_gateway_last_used_handoffs_total{direction}.
func handOffs(t *testing.T, gw *gateway, direction string) float64 {
	t.Helper()
	return labelledCounter(t, gw, "codevector_gateway_last_used_handoffs_total", "direction", direction)
}

// A replica stopped in a rollout does not write the last-use times of
// the keys it served (a burst of status writes in every step, while the
// API server lists keys to the new replicas): it hands them to a running
// peer, which writes them with its next flush. Nothing is lost.
func TestStoppedReplicaHandsItsLastUseToAPeer(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	clk := minuteStartClock(t)
	o := server.Options{Providers: providersFor(t, up, up), Clock: clk, LastUsedInterval: time.Hour}
	lns := []net.Listener{testenv.Listener(t), testenv.Listener(t)}
	addrs := []string{lns[0].Addr().String(), lns[1].Addr().String()}
	var stopping, running *gateway
	var stop func()
	var wg sync.WaitGroup
	wg.Go(func() { stopping, stop = startReplica(t, lns[0], addrs, o) })
	wg.Go(func() { running, _ = startReplica(t, lns[1], addrs, o) })
	wg.Wait()

	ns := env.Namespace(t)
	_, key := env.IssueKey(t, ns, "served-then-stopped")
	// The running replica uses the key first; the stopping one's use is
	// later, so only the hand-off can bring the time to write.
	answers(t, []*gateway{running}, key, http.StatusOK)
	clk.Step(10 * time.Second)
	// The clock follows the wall clock (testenv.FakeClock): the use is
	// recorded at a second between these two, which on a loaded machine
	// need not be the first.
	from := clk.Now().Truncate(time.Second)
	if status, _, body := chat(t, stopping.URL, key.Reveal()); status != http.StatusOK {
		t.Fatalf("chat through the replica to stop: %d %s", status, body)
	}
	to := clk.Now()

	stop()
	if got := get(t, ns, "served-then-stopped").Status.LastUsedAt; got != nil {
		t.Errorf("the stopped replica wrote lastUsedAt %v itself; want it handed to its peer", got)
	}
	if n := handOffs(t, running, "received"); n != 1 {
		t.Errorf("the running peer received %v last-use times, want 1", n)
	}

	// The peer's next flush writes the stopped replica's time.
	testenv.StepTo(clk, clk.Now().Add(time.Hour+time.Second))
	testenv.Eventually(t, 10*time.Second, func() error {
		got := get(t, ns, "served-then-stopped").Status.LastUsedAt
		if got == nil || got.Time.Before(from) || got.Time.After(to) {
			return fmt.Errorf("lastUsedAt %v, want the stopped replica's last use, between %v and %v", got, from, to)
		}
		return nil
	})
}

// A replica whose peers cannot take its last-use times writes them itself
// before it exits, as a single replica does.
func TestStoppedReplicaWithNoPeerWritesItsLastUse(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	ln := testenv.Listener(t)
	gw, stop := startReplica(t, ln, []string{ln.Addr().String(), deadPeer(t)}, server.Options{Providers: providersFor(t, up, up), LastUsedInterval: time.Hour})

	ns := env.Namespace(t)
	_, key := env.IssueKey(t, ns, "alone")
	if status, _, _ := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
		t.Fatalf("chat: %d", status)
	}
	stop()
	if got := get(t, ns, "alone").Status.LastUsedAt; got == nil {
		t.Error("lastUsedAt not written when the replica stopped with no peer to take it")
	}
	if n := handOffs(t, gw, "sent"); n != 0 {
		t.Errorf("%v last-use times counted as handed off to an unreachable peer", n)
	}
}
