package resilience

import (
	"bufio"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

const (
	// ownerDowntime is how long the counter owner stays killed while its
	// peer keeps trying to reach it: long enough for gRPC's reconnect
	// backoff (1 s, times 1.6 per failed attempt) to reach about 4 s, which
	// is what left the peer unable to reach the owner for seconds after it
	// was back (issue 28, found by the chaos run).
	ownerDowntime = 10 * time.Second
	// peerReconnectBound is how long after a restarted replica reports
	// ready its peers may still fail to reach it: the quota engine redials
	// a failing peer every 100 ms (gateway/quota, redialInterval); the rest
	// is slack for a shared, loaded machine and for the metric's polling.
	peerReconnectBound = time.Second
	// afterReady is how long the load goes on once the owner is ready.
	afterReady = 6 * time.Second
)

// Replica B, which owns about half of replica A's per-minute counters, is
// killed with SIGKILL under A's load, stays down 10 s and is restarted.
// Once B reports ready, A reaches it again within a second, and from then
// on A (--limits-failure-mode open, the default) serves no key beyond its
// per-minute limit. Before the fix A kept failing for seconds after B was
// ready (gRPC's reconnect backoff in gubernator's peer clients) and served
// those requests uncounted: the chaos run saw 75 requests admitted in a
// minute against a limit of 70.
func TestPeersReachARestartedCounterOwner(t *testing.T) {
	env.StartManager(t, manager.Options{})
	kubeconfig := env.KubeconfigFor(t, "resilience-peers", "system:masters")
	up := httptest.NewServer(&devmode.EchoUpstream{})
	defer up.Close()
	providers := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  openai:\n    baseURL: "+up.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Each key's counter of a minute is owned by A or B at random (the
	// period start is part of its name): with ten keys, B owns none in
	// one minute of 1,024. A limit under 100 per replica is never leased
	// (gateway/quota, Leases), so every request asks the owner.
	const limit = 20
	ns := env.Namespace(t)
	var ks []keys.Key
	for i := range 10 {
		_, k := env.IssueKey(t, ns, fmt.Sprintf("rpm-%d", i), func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](limit)}
		})
		ks = append(ks, k)
	}

	peerA, peerB := freeAddr(t), freeAddr(t)
	addrA, addrB, metricsA := freeAddr(t), freeAddr(t), freeAddr(t)
	peers := peerA + "," + peerB
	startReplica := func(addr, peer, metrics string) *process {
		return start(t, "gateway", "--kubeconfig", kubeconfig, "--listen", addr, "--metrics-listen="+metrics,
			"--providers", providers, "--peer-listen", peer, "--peers", peers, "--limits-failure-mode", "open")
	}
	a := startReplica(addrA, peerA, metricsA)
	b := startReplica(addrB, peerB, "")
	for _, r := range []struct {
		addr string
		p    *process
	}{{addrA, a}, {addrB, b}} {
		testenv.Eventually(t, 30*time.Second, func() error {
			if status, body := get("http://" + r.addr + "/readyz"); status != http.StatusOK {
				return fmt.Errorf("replica %s /readyz %d %s\n%s", r.addr, status, body, r.p.logs)
			}
			return nil
		})
	}

	// The load: four clients, each a request every 20 ms to A, over the
	// keys in turn; every answer is recorded with its start and end.
	type answer struct {
		key        int
		start, end time.Time
		status     int
	}
	var (
		mu      sync.Mutex
		answers []answer
		sent    atomic.Int64
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for i := c; ; i++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				k := i % len(ks)
				begin := time.Now()
				status := chatStatus("http://"+addrA, ks[k])
				mu.Lock()
				answers = append(answers, answer{key: k, start: begin, end: time.Now(), status: status})
				mu.Unlock()
				sent.Add(1)
			}
		})
	}
	// A's failures to reach a counter's owner, as its metric counts them,
	// and when it last went up.
	var engineErrors atomic.Int64
	var lastEngineError atomic.Pointer[time.Time]
	wg.Go(func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			n, err := metricValue("http://"+metricsA+"/metrics", "codevector_gateway_policy_engine_errors_total")
			if err == nil && int64(n) > engineErrors.Load() {
				now := time.Now()
				engineErrors.Store(int64(n))
				lastEngineError.Store(&now)
			}
		}
	})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Every key refused for its limit once (a 429 comes from the owner's
	// count) and no failure to reach an owner: A reaches B.
	testenv.Eventually(t, 30*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		limited := map[int]bool{}
		for _, a := range answers {
			if a.status == http.StatusTooManyRequests {
				limited[a.key] = true
			}
		}
		if len(limited) < len(ks) || engineErrors.Load() > 0 {
			return fmt.Errorf("%d of %d keys limited, %d engine errors on A", len(limited), len(ks), engineErrors.Load())
		}
		return nil
	})

	b.kill()
	killedAt := time.Now()
	testenv.Eventually(t, 10*time.Second, func() error {
		if engineErrors.Load() == 0 {
			return fmt.Errorf("A has not failed to reach B yet")
		}
		return nil
	})
	// The outage itself: B stays down for ownerDowntime while A's load
	// keeps trying to reach it (a fault's length, not a wait for a state).
	select {
	case <-time.After(time.Until(killedAt.Add(ownerDowntime))):
	case <-t.Context().Done():
		return
	}
	b = startReplica(addrB, peerB, "")
	var readyAt time.Time
	for deadline := time.Now().Add(30 * time.Second); ; {
		// Polled often: the readiness time is the yardstick. It is when the
		// first successful probe was sent, so B was ready no later.
		probe := time.Now()
		if status, _ := get("http://" + addrB + "/readyz"); status == http.StatusOK {
			readyAt = probe
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("restarted replica B not ready within 30 s\n%s", b.logs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("B killed, restarted after %v, ready %v after the kill; A's engine errors so far: %d",
		ownerDowntime, readyAt.Sub(killedAt).Round(time.Millisecond), engineErrors.Load())
	select {
	case <-time.After(time.Until(readyAt.Add(afterReady))):
	case <-t.Context().Done():
		return
	}
	close(stop)
	wg.Wait()

	last := lastEngineError.Load()
	if last == nil {
		t.Fatal("A never failed to reach B")
	}
	window := last.Sub(readyAt)
	t.Logf("A's last failure to reach B: %v after B was ready (bound %v); %d requests sent, %d engine errors on A",
		window.Round(time.Millisecond), peerReconnectBound, sent.Load(), engineErrors.Load())
	if window > peerReconnectBound {
		t.Errorf("A still failed to reach the restarted B %v after B was ready; want at most %v", window.Round(time.Millisecond), peerReconnectBound)
	}

	// From peerReconnectBound after B is ready every request is counted:
	// in each calendar minute, a key has at most its limit of 200s among
	// the requests that began from then on (and ended in the same minute).
	from := readyAt.Add(peerReconnectBound)
	type keyMinute struct {
		key    int
		minute time.Time
	}
	served := map[keyMinute]int{}
	for _, a := range answers {
		m := a.start.Truncate(time.Minute)
		if a.status == http.StatusOK && !a.start.Before(from) && a.end.Truncate(time.Minute).Equal(m) {
			served[keyMinute{a.key, m}]++
		}
	}
	worst := 0
	for km, n := range served {
		worst = max(worst, n)
		if n > limit {
			t.Errorf("key rpm-%d: %d requests served in the minute %s from %v after B was ready, over its limit of %d a minute",
				km.key, n, km.minute.Format("15:04"), peerReconnectBound, limit)
		}
	}
	t.Logf("most requests of one key served in a minute, from %v after B was ready: %d (limit %d)", peerReconnectBound, worst, limit)
}

// metricValue reads one unlabelled series from a Prometheus text page.
func metricValue(url, name string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: no series %s", url, name)
}
