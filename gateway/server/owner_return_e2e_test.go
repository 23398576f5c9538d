package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/quota"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// A budget's counter owner leaves the peer list (its pod not ready: a
// replica stopped, or failing its probes) and comes back while another
// replica keeps spending the key. The interim owner counts what was spent
// meanwhile; when the first owner is back in the list it must not resume
// from the count it held before it left. The chaos run (issue 28, seed 25,
// --peer-discovery kubernetes) billed a key 1,280 tokens against a budget
// of 1,220 this way. The requests here are sequential and each reserves at
// least what it is billed, so the budget holds exactly.
func TestBudgetHoldsWhenItsCounterOwnerLeavesAndReturns(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	const budget = 600
	k, key := issueTokenBudgetKey(t, "owner-returns", budget, gatewayv1alpha1.BudgetMonth)

	replicas := podPeeredReplicas(t, server.Options{Providers: providersFor(t, up, up)})

	// The owner of the key's budget counter this month; the requests go
	// through the other replica.
	y, m, _ := time.Now().UTC().Date()
	owner, front := ownerAndFront(t, replicas, fmt.Sprintf("%s/%s/%s/budget", k.Namespace, k.Name, k.UID), time.Date(y, m, 1, 0, 0, 0, 0, time.UTC))
	peers := []string{replicas[0].gw.PeerAddr, replicas[1].gw.PeerAddr}
	waitForPolicy(t, gateways(replicas), k)

	var billed int64
	// spendUntil sends requests through the front replica one at a time
	// until billed reaches target (or the budget refuses), and returns the
	// status of the last one.
	spendUntil := func(target int64) (int, string) {
		for range 2 * budget {
			status, _, body := postChat(t, replicas[front].gw.URL, key.Reveal(), "gpt-4o-mini")
			if status != http.StatusOK {
				return status, body
			}
			billed += totalTokens(t, body)
			if billed >= target {
				return status, body
			}
		}
		t.Fatalf("the budget of %d never refused: %d tokens billed", budget, billed)
		return 0, ""
	}

	// A third of the budget while the owner is in the list.
	if status, body := spendUntil(budget / 3); status != http.StatusOK {
		t.Fatalf("with %d of %d tokens billed: %d %s", billed, budget, status, body)
	}
	before := billed

	// The owner leaves the peer list; the front replica counts alone.
	setPodReady(t, replicas[owner].pod, false)
	waitForPeers(t, replicas[front].log, replicas[front].gw.PeerAddr)
	if status, body := spendUntil(2 * budget / 3); status != http.StatusOK {
		t.Fatalf("with %d of %d tokens billed, the owner out of the list: %d %s", billed, budget, status, body)
	}
	whileOut := billed - before

	// The owner is back; the front replica forwards to it again.
	setPodReady(t, replicas[owner].pod, true)
	waitForPeers(t, replicas[front].log, peers...)
	status, body := spendUntil(2 * budget)
	t.Logf("billed %d tokens against a budget of %d (%d of them while the owner was out of the peer list), then %d %s",
		billed, budget, whileOut, status, body)
	if status != http.StatusTooManyRequests || errorCode(t, body) != "budget_exceeded" {
		t.Fatalf("the spent budget answered %d %s, want 429 budget_exceeded", status, body)
	}
	if billed > budget {
		t.Errorf("billed %d tokens against a budget of %d: the returning owner resumed its count from before it left, forgetting the %d tokens spent meanwhile",
			billed, budget, whileOut)
	}
}

// A concurrency limit's counter owner leaves the peer list and comes back
// while another replica holds the key's requests. The returning owner
// never counted the requests the interim owner admitted: issue 28's chaos
// run saw 5 requests in flight against a limit of 4 for 20 s after an
// owner came back, and until the counter's 5-minute window restarted up to
// twice the limit could run. The counter's key now names the peer list, and
// the replica holding the requests counts their slots again under the new
// list when it changes, so the returning owner refuses at once.
func TestConcurrencyHoldsWhenItsCounterOwnerReturns(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, time.Second) // 100 words: a stream outlasts the test
	clk := testenv.FakeClock(t)
	const limit = 2
	k, key := issueConcurrencyKey(t, "owner-returns", limit)
	replicas := podPeeredReplicas(t, server.Options{Providers: providersFor(t, up, up), Clock: clk})
	waitForPolicy(t, gateways(replicas), k)
	// The test starts with a 20-second window of the concurrency counter
	// (gateway/policy's concurrencyWindow), so that the counter's owner
	// is the one named here for most of it. Past it, the slots are
	// counted in the next window, wherever that is owned.
	start := stepToNextConcurrencyWindow(clk)
	peers := []string{replicas[0].gw.PeerAddr, replicas[1].gw.PeerAddr}
	owner, front := ownerAndFront(t, replicas, fmt.Sprintf("%s/%s/%s/concurrent@%s", k.Namespace, k.Name, k.UID, quota.PeerListID(peers)), start)

	// The owner leaves the list; the front replica counts alone and holds
	// the limit.
	setPodReady(t, replicas[owner].pod, false)
	waitForPeers(t, replicas[front].log, replicas[front].gw.PeerAddr)
	for i := range limit {
		if status := openStream(t, replicas[front].gw, key); status != http.StatusOK {
			t.Fatalf("stream %d of a limit of %d, the owner out of the list: %d", i+1, limit, status)
		}
	}
	if status := openStream(t, replicas[front].gw, key); status != http.StatusTooManyRequests {
		t.Fatalf("a stream beyond the limit of %d, the owner out of the list: %d, want 429", limit, status)
	}

	// The owner is back: the front replica counts its streams there, at
	// once (or, if the window ends meanwhile, in the next one).
	setPodReady(t, replicas[owner].pod, true)
	waitForPeers(t, replicas[front].log, peers...)
	waitForRebooked(t, replicas[front].gw, counter(t, replicas[front].gw, rebookedMetric)+limit)
	for i := range 2 * limit {
		if status := openStream(t, replicas[front].gw, key); status != http.StatusTooManyRequests {
			t.Fatalf("stream %d beyond the limit of %d once the counter's owner was back: %d, want 429", i+1, limit, status)
		}
	}
}

const rebookedMetric = "codevector_gateway_policy_concurrency_slots_rebooked_total"

// concurrencyWindow is gateway/policy's: how often a concurrency counter
// starts over.
const concurrencyWindow = 20 * time.Second

// stepToNextConcurrencyWindow moves clk to the start of the next window of
// the concurrency counters, and returns it.
func stepToNextConcurrencyWindow(clk *testingclock.FakeClock) time.Time {
	next := clk.Now().Truncate(concurrencyWindow).Add(concurrencyWindow)
	stepTo(clk, next)
	return next
}

// stepTo moves clk to at, unless it has passed it already: it runs on
// with the wall clock too, and never goes back.
func stepTo(clk *testingclock.FakeClock, at time.Time) {
	if d := at.Sub(clk.Now()); d > 0 {
		clk.Step(d)
	}
}

// issueTokenBudgetKey issues a key with a budget of tokens per period.
func issueTokenBudgetKey(t *testing.T, name string, tokens int64, period gatewayv1alpha1.BudgetPeriod) (*gatewayv1alpha1.APIKey, keys.Key) {
	t.Helper()
	return env.IssueKey(t, env.Namespace(t), name, func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{Tokens: ptr.To(tokens), Period: period}
	})
}

// issueConcurrencyKey issues a key limited to limit requests at a time.
func issueConcurrencyKey(t *testing.T, name string, limit int32) (*gatewayv1alpha1.APIKey, keys.Key) {
	t.Helper()
	return env.IssueKey(t, env.Namespace(t), name, func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Limits = &gatewayv1alpha1.Limits{ConcurrentRequests: ptr.To(limit)}
	})
}

// waitForRebooked waits until gw has counted at least n concurrency slots
// again (in a new window or under a new peer list). The slots are counted
// again in each window, so a wait that began after the count it waits for
// ends with the next window's.
func waitForRebooked(t *testing.T, gw *gateway, n float64) {
	t.Helper()
	testenv.Eventually(t, 2*concurrencyWindow, func() error {
		if got := counter(t, gw, rebookedMetric); got < n {
			return fmt.Errorf("%v concurrency slots counted again, want %v", got, n)
		}
		return nil
	})
}

// openStream starts a long streamed chat with key through gw
// (postLongStream) and returns its status; an admitted stream stays open,
// holding its concurrency slot, until the test ends.
func openStream(t *testing.T, gw *gateway, key keys.Key) int {
	t.Helper()
	return postLongStream(t, gw, key).StatusCode
}

// podPeer is a replica found by its peers through its Pod, as with
// --peer-discovery kubernetes, the Pod's readiness written by the test.
type podPeer struct {
	gw  *gateway
	pod *corev1.Pod
	log *testenv.LogBuffer // its own log lines (also in logs)
}

// podPeeredReplicas starts two replicas with o that find each other
// through their Pods, each on a loopback address of its own and one peer
// port, as pods of one Deployment on their pod IPs.
func podPeeredReplicas(t *testing.T, o server.Options) []*podPeer {
	t.Helper()
	selector := "app.kubernetes.io/name=owner-return-" + rand.String(6)
	lns := peerListenersOnOnePort(t, "127.0.89.1", "127.0.89.2")
	replicas := make([]*podPeer, len(lns))
	for i, ln := range lns {
		ip, _, _ := net.SplitHostPort(ln.Addr().String())
		replicas[i] = &podPeer{pod: readyPeerPod(t, selector, fmt.Sprintf("owner-return-%d-%s", i, rand.String(4)), ip), log: &testenv.LogBuffer{}}
	}
	for i, ln := range lns {
		o := o
		o.PodIP = replicas[i].pod.Status.PodIP
		o.LastUsedInterval = 200 * time.Millisecond
		o.Peers = server.PeerOptions{Listener: ln, Listen: ln.Addr().String(), Discovery: server.DiscoveryKubernetes, Selector: selector}
		o.Logger = slog.New(slog.NewJSONHandler(io.MultiWriter(logs, replicas[i].log), &slog.HandlerOptions{Level: slog.LevelDebug}))
		o.MetricsListener = nil
		metrics := withMetricsListener(t, &o)
		url, g, _ := testenv.RunGateway(t, 15*time.Second, env.Config, o)
		replicas[i].gw = &gateway{URL: url, Gateway: g, PeerAddr: ln.Addr().String(), MetricsURL: metrics}
	}
	return replicas
}

func gateways(replicas []*podPeer) []*gateway {
	gws := make([]*gateway, len(replicas))
	for i, r := range replicas {
		gws[i] = r.gw
	}
	return gws
}

// ownerAndFront returns the index of the replica that owns counter in the
// period or window starting at start, by the hash the quota engine uses,
// and of the other one.
func ownerAndFront(t *testing.T, replicas []*podPeer, counter string, start time.Time) (owner, front int) {
	t.Helper()
	addr := counterOwner(t, []string{replicas[0].gw.PeerAddr, replicas[1].gw.PeerAddr}, counter, start)
	owner, front = 0, 1
	if addr != replicas[0].gw.PeerAddr {
		owner, front = 1, 0
	}
	t.Logf("the counter %s is owned by replica %d (%s); requests go through replica %d", counter[strings.LastIndexByte(counter, '/')+1:], owner, addr, front)
	return owner, front
}

// peerListenersOnOnePort listens on one port at each of ips (loopback
// addresses), as pods of one Deployment do on their pod IPs.
func peerListenersOnOnePort(t *testing.T, ips ...string) []net.Listener {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			t.Fatalf("listening on %s: %v", ips[0], err)
		}
		_, port, _ := net.SplitHostPort(first.Addr().String())
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, port))
			if err != nil {
				break // the port is taken there: try another
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return lns
		}
		for _, ln := range lns {
			ln.Close()
		}
	}
	t.Fatalf("no port free on every one of %v", ips)
	return nil
}

// readyPeerPod creates a gateway Pod in the system namespace at ip, Ready
// (envtest runs no kubelet: the test is it).
func readyPeerPod(t *testing.T, selector, name, ip string) *corev1.Pod {
	t.Helper()
	label, value, _ := strings.Cut(selector, "=")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: name, Labels: map[string]string{label: value}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "codevector"}}},
	}
	if err := env.Client.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), pod) })
	pod.Status.PodIP = ip
	pod.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	setPodReady(t, pod, true)
	return pod
}

// setPodReady writes pod's Ready condition, as its kubelet would.
func setPodReady(t *testing.T, pod *corev1.Pod, ready bool) {
	t.Helper()
	status := corev1.ConditionFalse
	if ready {
		status = corev1.ConditionTrue
	}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: status, LastTransitionTime: metav1.Now()}}
	if err := env.Client.Status().Update(context.Background(), pod); err != nil {
		t.Fatalf("marking Pod %s ready=%v: %v", pod.Name, ready, err)
	}
}

// waitForPeers waits until the replica that logs to log has logged that
// its peers are want (mesh.WatchPeers logs each change of the ready
// Pods): a peer list is no state a user can see.
func waitForPeers(t *testing.T, log *testenv.LogBuffer, want ...string) {
	t.Helper()
	list, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		lines := strings.Split(log.String(), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if strings.Contains(lines[i], `"msg":"Updated peers"`) {
				if strings.Contains(lines[i], `"peers":`+string(list)) {
					return nil
				}
				break
			}
		}
		return fmt.Errorf("the replica's last peer list logged is not %s", list)
	})
}

// counterOwner is the peer that owns counter in the period starting at
// start, by gubernator's consistent hash as gateway/quota sets it up (512
// points per peer, its default; the item's key is its name, "codevector",
// and unique key, counter@period-start-in-ms).
func counterOwner(t *testing.T, peers []string, counter string, start time.Time) string {
	t.Helper()
	hash := guber.NewReplicatedConsistentHash(nil, 512)
	for _, p := range peers {
		c, err := guber.NewPeerClient(guber.PeerConfig{Info: guber.PeerInfo{GRPCAddress: p}, Behavior: guber.BehaviorConfig{DisableBatching: true}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Shutdown(context.Background())
		hash.Add(c)
	}
	c, err := hash.Get(fmt.Sprintf("codevector_%s@%d", counter, start.UnixMilli()))
	if err != nil {
		t.Fatal(err)
	}
	return c.Info().GRPCAddress
}

// totalTokens is what an answer's usage says it cost.
func totalTokens(t *testing.T, body string) int64 {
	t.Helper()
	var a struct {
		Usage struct {
			TotalTokens int64 `json:"total_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal([]byte(body), &a); err != nil || a.Usage.TotalTokens <= 0 {
		t.Fatalf("an answer without usage (%v): %s", err, body)
	}
	return a.Usage.TotalTokens
}
