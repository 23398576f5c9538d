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
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// peeredReplicas starts n gateways that share per-key counters, each with
// its peer listener open before any starts. The manager creates the
// peers' credential; the gateways wait for it.
func peeredReplicas(t *testing.T, n int, o server.Options) []*gateway {
	t.Helper()
	return peeredReplicasUntil(t, t.Context(), n, o)
}

// postChat sends a chat completion for model with key, and returns the
// status, headers and body.
func postChat(t *testing.T, url, key, model string) (int, http.Header, string) {
	t.Helper()
	return testenv.PostChatWithHeaders(t, url, key,
		fmt.Sprintf(`{"model": %q, "messages": [{"role": "user", "content": "Hello there"}], "max_tokens": 20}`, model))
}

// minuteStartClock is a clock for gateways whose per-minute limits a test
// checks: it starts at the beginning of the next calendar minute, so the
// test has the whole minute before its counters reset, whenever it runs.
// It runs ahead of the wall clock, never behind (gateway/quota needs that).
func minuteStartClock(t *testing.T) *testingclock.FakeClock {
	clk := testenv.FakeClock(t)
	clk.SetTime(time.Now().Truncate(time.Minute).Add(time.Minute))
	return clk
}

func errorCode(t *testing.T, body string) string {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an OpenAI-style error: %s", body)
	}
	return e.Error.Code
}

// A key's model allowlist and request rate hold across three replicas:
// the limit is the key's, not each replica's (LiteLLM's local counters let
// through limit x replicas).
func TestPolicyAcrossThreeReplicas(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	clk := minuteStartClock(t)
	replicas := peeredReplicas(t, 3, server.Options{Providers: providersFor(t, up, up), Clock: clk})
	const rpm = 12
	k, key := env.IssueKey(t, env.Namespace(t), "limited", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-4o*"}
		k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](rpm)}
	})
	testenv.Eventually(t, 5*time.Second, func() error {
		for i, gw := range replicas {
			if e := gw.Index().Lookup(strings.TrimPrefix(k.Status.Prefix, "cvk_")); e == nil || e.Policy == nil {
				return fmt.Errorf("replica %d has not seen the key's policy", i)
			}
		}
		return nil
	})

	// A model outside the allowlist: 403 naming it, on every replica, and
	// it costs nothing against the rate.
	for i, gw := range replicas {
		status, _, body := postChat(t, gw.URL, key.Reveal(), "o3-pro")
		if status != http.StatusForbidden || errorCode(t, body) != "model_not_allowed" || !strings.Contains(body, "o3-pro") {
			t.Errorf("replica %d, model o3-pro: %d %s", i, status, body)
		}
	}

	// 3 x the limit, spread over the replicas at once: exactly the limit
	// passes.
	var mu sync.Mutex
	statuses := map[int]int{}
	var refusal http.Header
	var wg sync.WaitGroup
	for i := range 3 * rpm {
		gw := replicas[i%len(replicas)]
		wg.Go(func() {
			status, h, body := postChat(t, gw.URL, key.Reveal(), "gpt-4o-mini")
			mu.Lock()
			defer mu.Unlock()
			statuses[status]++
			if status == http.StatusTooManyRequests && refusal == nil {
				refusal = h
				if code := errorCode(t, body); code != "rate_limit_exceeded" {
					t.Errorf("429 code %q, want rate_limit_exceeded: %s", code, body)
				}
			}
		})
	}
	wg.Wait()
	if statuses[http.StatusOK] != rpm || statuses[http.StatusTooManyRequests] != 2*rpm {
		t.Fatalf("statuses %v, want %d x 200 and %d x 429", statuses, rpm, 2*rpm)
	}
	for _, h := range []string{"Retry-After", "X-Ratelimit-Limit-Requests", "X-Ratelimit-Remaining-Requests", "X-Ratelimit-Reset-Requests"} {
		if refusal.Get(h) == "" {
			t.Errorf("the 429 lacks %s: %v", h, refusal)
		}
	}
	if got := refusal.Get("X-Ratelimit-Limit-Requests"); got != fmt.Sprint(rpm) {
		t.Errorf("X-Ratelimit-Limit-Requests = %s, want %d", got, rpm)
	}

	// Refusals are counted by namespace, owner and reason, never by key.
	resp, err := http.Get(replicas[0].MetricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`codevector_gateway_policy_refusals_total{namespace=%q,owner=%q,reason="model_not_allowed"} 1`, k.Namespace, k.Spec.Owner)
	if !strings.Contains(string(metrics), want) {
		t.Errorf("/metrics lacks %s", want)
	}
	if strings.Contains(string(metrics), `"`+k.Name+`"`) || strings.Contains(string(metrics), k.Status.Prefix) {
		t.Error("/metrics names the key")
	}

	// An admin raises the limit: every replica applies it from the watch.
	patch(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Limits.RequestsPerMinute = ptr.To[int64](rpm + 3) })
	testenv.Eventually(t, 5*time.Second, func() error {
		for i, gw := range replicas {
			e := gw.Index().Lookup(strings.TrimPrefix(k.Status.Prefix, "cvk_"))
			if e == nil || e.Policy == nil || *e.Policy.Limits.RequestsPerMinute != rpm+3 {
				return fmt.Errorf("replica %d has not seen the new limit", i)
			}
		}
		return nil
	})
	minute := clk.Now().Truncate(time.Minute)
	extra := 0
	for i := range 6 {
		status, _, _ := postChat(t, replicas[i%3].URL, key.Reveal(), "gpt-4o-mini")
		if status == http.StatusOK {
			extra++
		}
	}
	if clk.Now().Truncate(time.Minute).Equal(minute) && extra != 3 {
		t.Errorf("after raising the limit by 3, %d more requests passed in the same minute", extra)
	}

	// status.usage adds up every replica's share exactly.
	testenv.Eventually(t, 10*time.Second, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			return err
		}
		u := live.Status.Usage
		// The echo upstream reports 1 prompt token and one completion
		// token per word of its answer.
		if u == nil || u.Requests != int64(rpm+extra) || u.InputTokens != int64(rpm+extra) {
			return fmt.Errorf("status.usage = %+v, want %d requests and %d input tokens", u, rpm+extra, rpm+extra)
		}
		if !strings.HasSuffix(u.Summary, "tokens") {
			return fmt.Errorf("usage summary %q", u.Summary)
		}
		return nil
	})
}

// A token budget is spent across replicas, refused with budget_exceeded
// once spent, and stays spent when every replica restarts: the period's
// usage comes back from status.usage.
func TestBudgetSurvivesRestartOfAllReplicas(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	opts := server.Options{Providers: providersFor(t, up, up)}
	const budget = 200
	k, key := issueTokenBudgetKey(t, "budgeted", budget, gatewayv1alpha1.BudgetMonth)

	spend := func(replicas []*gateway) (ok int, lastStatus int, lastBody string) {
		for i := range 100 {
			status, _, body := postChat(t, replicas[i%len(replicas)].URL, key.Reveal(), "gpt-4o-mini")
			if status != http.StatusOK {
				return ok, status, body
			}
			ok++
		}
		return ok, 0, ""
	}

	var spentBefore int
	{
		ctx, cancel := context.WithCancel(context.Background())
		replicas := peeredReplicasUntil(t, ctx, 3, opts)
		ok, status, body := spend(replicas)
		if status != http.StatusTooManyRequests || errorCode(t, body) != "budget_exceeded" {
			t.Fatalf("after %d requests: %d %s, want 429 budget_exceeded", ok, status, body)
		}
		t.Logf("%d requests passed a budget of %d tokens before 429 budget_exceeded", ok, budget)
		spentBefore = ok
		if ok == 0 || ok > budget {
			t.Fatalf("%d requests passed a budget of %d tokens", ok, budget)
		}
		// Every replica has written its share before it stops.
		waitForUsage(t, k, ok)
		cancel()
	}

	// Three fresh replicas know nothing but status.usage.
	replicas := peeredReplicas(t, 3, opts)
	testenv.Eventually(t, 5*time.Second, func() error {
		for i, gw := range replicas {
			if e := gw.Index().Lookup(strings.TrimPrefix(k.Status.Prefix, "cvk_")); e == nil || e.Policy == nil || e.Policy.Usage == nil || e.Policy.Usage.Requests != int64(spentBefore) {
				return fmt.Errorf("replica %d has not seen the stored usage of %d requests", i, spentBefore)
			}
		}
		return nil
	})
	ok2, status2, body2 := spend(replicas)
	t.Logf("after restart: %d ok, then %d %s", ok2, status2, body2)
	if ok, status, body := ok2, status2, body2; ok != 0 || status != http.StatusTooManyRequests || errorCode(t, body) != "budget_exceeded" {
		t.Errorf("after a restart of every replica, %d more requests passed, then %d %s; want none", ok, status, body)
	}
}

// waitForUsage waits until k's status.usage counts requests requests.
func waitForUsage(t *testing.T, k *gatewayv1alpha1.APIKey, requests int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			return err
		}
		if u := live.Status.Usage; u == nil || u.Requests != int64(requests) {
			return fmt.Errorf("status.usage = %+v, want %d requests", u, requests)
		}
		return nil
	})
}

// peerListeners opens n peer listeners on loopback before any replica
// starts (so their addresses are taken for the whole test) and returns
// them with their addresses: the static peer list.
func peerListeners(t testing.TB, n int) ([]net.Listener, []string) {
	t.Helper()
	listeners := make([]net.Listener, n)
	addrs := make([]string, n)
	for i := range listeners {
		listeners[i] = testenv.Listener(t)
		addrs[i] = listeners[i].Addr().String()
	}
	return listeners, addrs
}

// peeredReplicasUntil is peeredReplicas whose gateways stop when ctx ends.
func peeredReplicasUntil(t *testing.T, ctx context.Context, n int, o server.Options) []*gateway {
	t.Helper()
	listeners, addrs := peerListeners(t, n)
	replicas := make([]*gateway, n)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() { replicas[i] = joinReplica(t, ctx, listeners[i], addrs, o) })
	}
	wg.Wait()
	return replicas
}

// joinReplica starts a replica serving its peers on ln, with the static
// peer list peers, that stops when ctx ends, and waits until it is ready.
func joinReplica(t *testing.T, ctx context.Context, ln net.Listener, peers []string, o server.Options) *gateway {
	t.Helper()
	gw, stop := startReplica(t, ln, peers, o)
	go func() { <-ctx.Done(); stop() }()
	return gw
}

// startReplica is joinReplica with a stop function (which returns once
// the replica's Run has) instead of a context. Last-use times are flushed
// every 200ms unless o says otherwise.
func startReplica(t *testing.T, ln net.Listener, peers []string, o server.Options) (gw *gateway, stop func()) {
	t.Helper()
	return startReplicaWith(t, env.Config, ln, peers, o)
}

// startReplicaWith is startReplica reaching the API server with cfg.
func startReplicaWith(t *testing.T, cfg *rest.Config, ln net.Listener, peers []string, o server.Options) (gw *gateway, stop func()) {
	t.Helper()
	if o.LastUsedInterval == 0 {
		o.LastUsedInterval = 200 * time.Millisecond
	}
	o.Peers.Listener, o.Peers.Static = ln, peers
	o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	o.MetricsListener = nil // one each
	metrics := withMetricsListener(t, &o)
	url, g, stop := testenv.RunGateway(t, 15*time.Second, cfg, o)
	return &gateway{URL: url, Gateway: g, PeerAddr: ln.Addr().String(), MetricsURL: metrics}, stop
}

// A token limit reserves each request's prompt and max_tokens before it is
// forwarded and settles to what the provider reported; a request that can
// never fit is told to lower max_tokens.
func TestTokensPerMinuteAcrossReplicas(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	replicas := peeredReplicas(t, 3, server.Options{Providers: providersFor(t, up, up), Clock: minuteStartClock(t)})
	const tpm = 300
	k, key := env.IssueKey(t, env.Namespace(t), "tokens", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Limits = &gatewayv1alpha1.Limits{TokensPerMinute: ptr.To[int64](tpm)}
	})
	waitForPolicy(t, replicas, k)

	admitted := 0
	var refusal http.Header
	var body string
	for i := range 200 {
		status, h, b := postChat(t, replicas[i%3].URL, key.Reveal(), "gpt-4o-mini")
		if status == http.StatusTooManyRequests {
			refusal, body = h, b
			break
		}
		if status != http.StatusOK {
			t.Fatalf("request %d: %d %s", i, status, b)
		}
		admitted++
	}
	if refusal == nil {
		t.Fatalf("%d requests passed a limit of %d tokens per minute", admitted, tpm)
	}
	if errorCode(t, body) != "rate_limit_exceeded" || refusal.Get("X-Ratelimit-Limit-Tokens") != fmt.Sprint(tpm) || refusal.Get("Retry-After") == "" {
		t.Errorf("refusal after %d requests: %v %s", admitted, refusal, body)
	}
	// Each request settles to 1 prompt token and a few completion tokens
	// (the echo upstream), far less than it reserves: settlement gives the
	// difference back, so many more requests pass than reservations alone
	// would allow (about 60 tokens each).
	if admitted < tpm/60+2 {
		t.Errorf("only %d requests passed: reservations were not settled back", admitted)
	}

	huge := fmt.Sprintf(`{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": %d}`, 10*tpm)
	status, b := testenv.PostChat(t, replicas[0].URL, key.Reveal(), huge)
	if status != http.StatusTooManyRequests || !strings.Contains(b, "Lower max_tokens") {
		t.Errorf("a request reserving more than a minute allows: %d %s", status, b)
	}
}

// concurrentRequests counts requests in flight on every replica together.
func TestConcurrentRequestsAcrossReplicas(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 20*time.Millisecond) // 100 words 20ms apart: streams last 2s
	replicas := peeredReplicas(t, 3, server.Options{Providers: providersFor(t, up, up)})
	k, key := env.IssueKey(t, env.Namespace(t), "concurrent", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Limits = &gatewayv1alpha1.Limits{ConcurrentRequests: ptr.To[int32](2)}
	})
	waitForPolicy(t, replicas, k)

	first := startLongStream(t, replicas[0], key)
	second := startLongStream(t, replicas[1], key)
	status, _, body := postChat(t, replicas[2].URL, key.Reveal(), "gpt-4o-mini")
	if status != http.StatusTooManyRequests || !strings.Contains(body, "2 requests at a time") {
		t.Errorf("a third request while two stream: %d %s", status, body)
	}
	// Once the streams end, their slots are back.
	for first.Scan() {
	}
	for second.Scan() {
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if status, _, body := postChat(t, replicas[2].URL, key.Reveal(), "gpt-4o-mini"); status != http.StatusOK {
			return fmt.Errorf("after the streams ended: %d %s", status, body)
		}
		return nil
	})
}

// A concurrency limit holds while its requests outlast the counter's
// windows: each replica counts the slots it holds in the next window
// before it starts. Before, the counter restarted every 5 minutes and the
// requests in flight stopped counting, so at each restart up to twice the
// limit ran.
func TestConcurrencyHoldsAcrossItsCounterRestarts(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, time.Second) // 100 words: a stream outlasts the test
	clk := testenv.FakeClock(t)
	const limit = 2
	k, key := issueConcurrencyKey(t, "concurrency-restarts", limit)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Clock: clk})
	waitForPolicy(t, []*gateway{gw}, k)
	start := stepToNextConcurrencyWindow(clk)
	for i := range limit {
		if status := openStream(t, gw, key); status != http.StatusOK {
			t.Fatalf("stream %d of a limit of %d: %d", i+1, limit, status)
		}
	}
	// Six minutes of windows, the old 5-minute restart included, each
	// entered once its re-count is done (5 s before it starts).
	for clk.Now().Before(start.Add(6 * time.Minute)) {
		next := clk.Now().Truncate(concurrencyWindow).Add(concurrencyWindow)
		rebooked := counter(t, gw, rebookedMetric)
		stepTo(clk, next.Add(-4*time.Second))
		waitForRebooked(t, gw, rebooked+limit)
		stepTo(clk, next.Add(time.Second))
		if status := openStream(t, gw, key); status != http.StatusTooManyRequests {
			t.Fatalf("%s into the streams, a window after the counter restarted: a third stream got %d, want 429 (limit %d)",
				clk.Now().Sub(start).Round(time.Second), status, limit)
		}
	}
}

func waitForPolicy(t *testing.T, replicas []*gateway, k *gatewayv1alpha1.APIKey) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		for i, gw := range replicas {
			if e := gw.Index().Lookup(strings.TrimPrefix(k.Status.Prefix, "cvk_")); e == nil || e.Policy == nil {
				return fmt.Errorf("replica %d has not seen the key's policy", i)
			}
		}
		return nil
	})
}

// 200 concurrent first requests against a small budget, across three
// replicas: reservations are taken atomically at the counter's owner, so
// what was admitted never spends more than the budget (LiteLLM's budgets
// overrun under concurrent first requests).
func TestConcurrentFirstRequestsCannotOverrunABudget(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	replicas := peeredReplicas(t, 3, server.Options{Providers: providersFor(t, up, up)})
	const budget = 500
	k, key := issueTokenBudgetKey(t, "first-rush", budget, gatewayv1alpha1.BudgetTotal)
	waitForPolicy(t, replicas, k)

	var mu sync.Mutex
	codes := map[string]int{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			status, _, body := postChat(t, replicas[i%3].URL, key.Reveal(), "gpt-4o-mini")
			code := "ok"
			if status != http.StatusOK {
				code = errorCode(t, body)
			}
			mu.Lock()
			codes[code]++
			mu.Unlock()
		})
	}
	wg.Wait()
	t.Logf("200 concurrent requests against %d tokens: %v", budget, codes)
	if codes["ok"] == 0 || codes["ok"]+codes["budget_exceeded"] != 200 {
		t.Fatalf("outcomes %v: want some admitted and the rest budget_exceeded", codes)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			return err
		}
		u := live.Status.Usage
		if u == nil || u.Requests != int64(codes["ok"]) {
			return fmt.Errorf("status.usage = %+v, want %d requests", u, codes["ok"])
		}
		if spent := u.InputTokens + u.OutputTokens; spent > budget {
			t.Errorf("the admitted requests spent %d tokens of a %d budget", spent, budget)
		}
		return nil
	})
}
