package server_test

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// closedWithin dials addr, writes request, and returns how long the server
// took to close the connection after the write, or an error if it was
// still open after limit.
func closedWithin(addr, request string, limit time.Duration) (time.Duration, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if _, err := io.WriteString(c, request); err != nil {
		return 0, err
	}
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(limit))
	if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		return 0, fmt.Errorf("still open after %v: %w", limit, err)
	}
	return time.Since(start), nil
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

// Issue 11, item 2 (slowloris): requests that announce a body and never
// send it, on the routes for people and probes, not just /gateway/. Every
// connection must be closed within the body timeout.
func TestStalledBodiesAreCutOnEveryRoute(t *testing.T) {
	up := newUpstream(t, 0)
	timeouts := server.Timeouts{ReadHeader: time.Second, Body: time.Second, Idle: time.Second}
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Timeouts: timeouts})
	addr := strings.TrimPrefix(gw.URL, "http://")
	baseline := runtime.NumGoroutine()

	// The bound: the body timeout, plus slack for a loaded two-core machine.
	const perRoute = 50
	bound := timeouts.Body + 3*time.Second
	requests := map[string]string{
		"/healthz":         "GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"/readyz":          "GET /readyz HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"/docs/":           "GET /docs/ HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"/api/v1/apikeys":  "POST /api/v1/apikeys HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n",
		"/api-keys":        "GET /api-keys HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"/metrics":         "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n",
		"/gateway/openai/": "POST /gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10\r\n\r\n",
	}
	type result struct {
		route string
		took  time.Duration
		err   error
	}
	results := make(chan result, perRoute*len(requests))
	var wg sync.WaitGroup
	for route, req := range requests {
		for range perRoute {
			wg.Go(func() {
				took, err := closedWithin(addr, req, bound)
				results <- result{route, took, err}
			})
		}
	}
	wg.Wait()
	close(results)
	slowest := map[string]time.Duration{}
	open := map[string]int{}
	for r := range results {
		if r.err != nil {
			open[r.route]++
			continue
		}
		slowest[r.route] = max(slowest[r.route], r.took)
	}
	for route := range requests {
		if open[route] > 0 {
			t.Errorf("%s: %d of %d stalled connections still open %v after their headers (body timeout %v)", route, open[route], perRoute, bound, timeouts.Body)
		} else {
			t.Logf("%s: %d stalled connections closed, the last %v after its headers (body timeout %v)", route, perRoute, slowest[route].Round(time.Millisecond), timeouts.Body)
		}
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		if g := runtime.NumGoroutine(); g > baseline+10 {
			return fmt.Errorf("%d goroutines, baseline %d: stalled clients pinned goroutines", g, baseline)
		}
		return nil
	})

	// A console request whose body does arrive is served as before.
	resp, err := http.Get(gw.URL + "/healthz")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /healthz after the stall: %v %v", resp, err)
	}
	resp.Body.Close()
}

// Issue 11, item 2: one client address cannot hold more than
// MaxConnsPerClient connections; past it, new ones are closed at once,
// and a slot frees when one of its connections closes.
func TestConnectionsPerClientAreCapped(t *testing.T) {
	up := newUpstream(t, 0)
	const limit = 8
	gw := startGateway(t, server.Options{
		Providers:         providersFor(t, up, up),
		Timeouts:          server.Timeouts{ReadHeader: 30 * time.Second, Idle: 30 * time.Second},
		MaxConnsPerClient: limit,
	})
	addr := strings.TrimPrefix(gw.URL, "http://")
	// startGateway's readiness probe may still hold a keep-alive
	// connection; drop it so the count below is exact.
	http.DefaultClient.CloseIdleConnections()

	var held []net.Conn
	testenv.Eventually(t, 5*time.Second, func() error {
		for len(held) < limit {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			held = append(held, c)
		}
		// Connections the server refused are closed at once; keep only
		// the ones it accepted (a refused one reads EOF).
		kept := held[:0]
		for _, c := range held {
			_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); isTimeout(err) {
				kept = append(kept, c)
			} else {
				c.Close()
			}
		}
		held = kept
		if len(held) < limit {
			return fmt.Errorf("%d connections held", len(held))
		}
		return nil
	})
	t.Cleanup(func() {
		for _, c := range held {
			c.Close()
		}
	})

	// One more from the same address: closed at once, without a request.
	if took, err := closedWithin(addr, "", 5*time.Second); err != nil || took > 2*time.Second {
		t.Errorf("connection %d from one address: closed after %v, %v; want it closed at once", limit+1, took, err)
	}
	if got := counter(t, gw, "codevector_gateway_connections_refused_total"); got < 1 {
		t.Errorf("codevector_gateway_connections_refused_total = %v, want at least 1", got)
	}

	// A slot frees when a connection closes.
	held[0].Close()
	held = held[1:]
	testenv.Eventually(t, 5*time.Second, func() error {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
		b, _ := io.ReadAll(c)
		if !strings.HasPrefix(string(b), "HTTP/1.1 200") {
			return fmt.Errorf("after a slot freed: %q", b)
		}
		return nil
	})
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// nonLoopbackAddr is an address of this machine that is not loopback, for
// connections the gateway must treat as coming from elsewhere.
func nonLoopbackAddr(t *testing.T) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	// Every machine this project runs on has one (its network interface);
	// without it the refusal to non-loopback callers cannot be shown.
	t.Fatal("this machine has no non-loopback IPv4 address to call the gateway from")
	return ""
}

// startGatewayOn runs a gateway on ln until the test ends and waits for
// its first sync. (testenv's gateways listen on loopback only.)
func startGatewayOn(t *testing.T, ln net.Listener, o server.Options) {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	testenv.RunGatewayOn(t, ln, 15*time.Second, env.Config, o)
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// Issue 11, item 5: /readyz tells only loopback callers (kubectl
// port-forward, a shell in the pod) why; a caller from elsewhere (a key
// holder through the ingress, the kubelet) gets the status code and "ok"
// or "not ready", nothing about the API server.
func TestReadyzDetailOnlyOnLoopback(t *testing.T) {
	up := newUpstream(t, 0)
	ip := nonLoopbackAddr(t)
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	startGatewayOn(t, ln, server.Options{Providers: providersFor(t, up, up)})

	status, body := getBody(t, "http://"+net.JoinHostPort(ip, port)+"/readyz")
	if status != http.StatusOK || body != "ok\n" {
		t.Errorf("/readyz from %s (not loopback) = %d %q, want 200 \"ok\\n\" and nothing more", ip, status, body)
	}
}

// The loopback side: the same gateway answers a loopback caller in full.
func TestReadyzDetailOnLoopback(t *testing.T) {
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	status, body := getBody(t, gw.URL+"/readyz")
	if status != http.StatusOK || !strings.Contains(body, "apiserver: reachable") {
		t.Errorf("/readyz from loopback = %d %q, want the details", status, body)
	}
	// Through a proxy on loopback (a sign-in sidecar), the caller is not.
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/readyz", nil)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(b) != "ok\n" {
		t.Errorf("/readyz forwarded by a loopback proxy = %d %q, want 200 \"ok\\n\"", resp.StatusCode, b)
	}
}

// Issue 11, item 5: in dev mode everyone is signed in, so a page on
// another name that rebinds its DNS to 127.0.0.1 would reach a signed-in
// console. Only requests addressed to localhost or a loopback address are
// served.
func TestDevModeAnswersOnlyLoopbackHosts(t *testing.T) {
	up := newUpstream(t, 0)
	o := server.Options{Providers: providersFor(t, up, up)}
	o.Console.Auth = console.AuthDev
	gw := startGateway(t, o)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.URL, "http://"))

	do := func(method, path, host, body string) (int, string) {
		req, _ := http.NewRequest(method, gw.URL+path, strings.NewReader(body))
		req.Host = host
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", "http://"+host)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, host := range []string{"attacker.example:" + port, "attacker.example", "192.0.2.2:" + port, "localhost.attacker.example:" + port, "127.0.0.1.nip.io:" + port} {
		for _, path := range []string{"/api/v1/apikeys", "/api-keys", "/docs/", "/gateway/openai/v1/models"} {
			status, body := do(http.MethodGet, path, host, "")
			if status != http.StatusMisdirectedRequest || !strings.Contains(body, "localhost") {
				t.Errorf("GET %s with Host %s = %d %.120q, want 421 saying to use localhost", path, host, status, body)
			}
		}
		if status, _ := do(http.MethodPost, "/api/v1/apikeys", host, `{"name":"rebound"}`); status != http.StatusMisdirectedRequest {
			t.Errorf("POST /api/v1/apikeys with Host %s = %d, want 421", host, status)
		}
	}
	for _, host := range []string{"localhost:" + port, "127.0.0.1:" + port, "[::1]:" + port, "localhost", "app.localhost:" + port} {
		if status, body := do(http.MethodGet, "/api/v1/apikeys", host, ""); status != http.StatusOK {
			t.Errorf("GET /api/v1/apikeys with Host %s = %d %.120q, want 200", host, status, body)
		}
	}
}

// Issue 11, item 5: model routing reads the body as it arrives. Requests
// that declare the largest allowed body and then stall must not make the
// gateway allocate what they declared.
func TestModelRoutingDoesNotAllocateTheDeclaredLength(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Timeouts: server.Timeouts{Body: time.Minute}})
	_, key := env.IssueKey(t, env.Namespace(t), "stall")
	// Verified once (argon2 takes its 19 MiB now, not during the measure).
	if status, _, _ := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
		t.Fatalf("chat: %d", status)
	}
	addr := strings.TrimPrefix(gw.URL, "http://")
	hitsBefore := counter(t, gw, "codevector_gateway_verified_cache_hits_total")
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)

	const stalled = 30
	declared := 10 << 20 // --max-request-body's default
	request := fmt.Sprintf("POST /gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"+
		"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n{\"model\": \"claude-", key.Reveal(), declared)
	for range stalled {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
	}
	// Every stalled request has been authenticated, so each is in the
	// proxy, reading its body.
	testenv.Eventually(t, 10*time.Second, func() error {
		if hits := counter(t, gw, "codevector_gateway_verified_cache_hits_total") - hitsBefore; hits < stalled {
			return fmt.Errorf("%v of %d stalled requests authenticated", hits, stalled)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond) // from authentication to the body read: microseconds
	var after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&after)
	grew := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap %d MiB -> %d MiB with %d requests stalled after declaring %d MiB each", before.HeapAlloc>>20, after.HeapAlloc>>20, stalled, declared>>20)
	// Generous: a preallocating gateway would grow by stalled x declared
	// (300 MiB).
	if limit := int64(stalled * declared / 10); grew > limit {
		t.Errorf("heap grew by %d MiB for %d stalled requests, want under %d MiB: the declared length is being allocated up front", grew>>20, stalled, limit>>20)
	}
}
