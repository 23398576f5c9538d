package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// recordedRequest is what a fake upstream saw.
type recordedRequest struct {
	Method   string
	Path     string
	RawQuery string
	Host     string
	Header   http.Header
	Body     []byte
}

// fakeUpstream is a real HTTP server standing in for a provider. It records
// every request, then answers with respond (default: a small JSON body and a
// cookie that the proxy must drop).
type fakeUpstream struct {
	*httptest.Server
	mu       sync.Mutex
	requests []recordedRequest
}

func newFakeUpstream(t *testing.T, respond http.HandlerFunc) *fakeUpstream {
	t.Helper()
	u := &fakeUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body []byte
		if respond == nil {
			body, _ = io.ReadAll(r.Body)
		}
		u.mu.Lock()
		u.requests = append(u.requests, recordedRequest{
			Method:   r.Method,
			Path:     r.URL.Path,
			RawQuery: r.URL.RawQuery,
			Host:     r.Host,
			Header:   r.Header.Clone(),
			Body:     body,
		})
		u.mu.Unlock()
		if respond != nil {
			respond(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "__cf_bm=upstream; Path=/")
		_, _ = io.WriteString(w, `{"ok":true}`)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *fakeUpstream) received() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.requests...)
}

func (u *fakeUpstream) only(t *testing.T) recordedRequest {
	t.Helper()
	got := u.received()
	if len(got) != 1 {
		t.Fatalf("upstream received %d requests, want 1", len(got))
	}
	return got[0]
}

// testProviders is the DESIGN.md example pointed at fake upstreams.
func testProviders(t testing.TB, openaiURL, anthropicURL string) *Providers {
	t.Helper()
	file := strings.NewReplacer(
		"https://api.openai.com", openaiURL,
		"https://api.anthropic.com", anthropicURL,
	).Replace(designExample)
	ps, err := ParseProviders([]byte(file), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// newFront serves the proxy on a real HTTP server, as the gateway does.
func newFront(t *testing.T, ps *Providers, opts Options) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := New(ps, opts)
	front := httptest.NewServer(p)
	t.Cleanup(func() {
		front.Close()
		p.CloseIdleConnections()
	})
	return front
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading response: %v", err)
	}
	return resp, body
}

func newRequest(t *testing.T, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func checkJSONError(t *testing.T, resp *http.Response, body []byte, status int, code, msgPart string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("body %q is not a JSON error: %v", body, err)
	}
	if e.Error.Code != code {
		t.Errorf("code = %q, want %q", e.Error.Code, code)
	}
	if !strings.Contains(e.Error.Message, msgPart) {
		t.Errorf("message = %q, want it to contain %q", e.Error.Message, msgPart)
	}
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const clientKey = "cvk_Ab3De6Gh0123456789ABCDEFGHIJKLMNOPQRSTUV0VGEUy"

func TestProxyForwardsToProvider(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{})

	// Odd spacing and key order: the body must arrive exactly as sent.
	sent := []byte("{ \"model\" : \"gpt-4o\",\n \"messages\": [{\"role\":\"user\",\"content\":\"h\\u00e9llo\"}] }")
	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions?stream=true&q=a%20b", bytes.NewReader(sent))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	req.Header.Set("X-Api-Key", clientKey)
	req.Header.Set("Cookie", "session=console")
	req.Header.Set("X-Forwarded-User", "mallory")
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	req.Header.Set("OpenAI-Beta", "assistants=v2")
	resp, body := do(t, req)

	if resp.StatusCode != http.StatusOK || string(body) != `{"ok":true}` {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	if c := resp.Header.Get("Set-Cookie"); c != "" {
		t.Errorf("upstream cookie reached the client: %q", c)
	}
	got := openai.only(t)
	if got.Method != http.MethodPost || got.Path != "/v1/chat/completions" || got.RawQuery != "stream=true&q=a%20b" {
		t.Errorf("upstream saw %s %s?%s", got.Method, got.Path, got.RawQuery)
	}
	if !bytes.Equal(got.Body, sent) {
		t.Errorf("upstream body\n%q\nwant\n%q", got.Body, sent)
	}
	if got.Host != strings.TrimPrefix(openai.URL, "http://") {
		t.Errorf("upstream Host = %q", got.Host)
	}
	h := got.Header
	if v := h.Values("Authorization"); len(v) != 1 || v[0] != "Bearer sk-openai-test" {
		t.Errorf("Authorization = %q, want the provider credential only", v)
	}
	for _, k := range []string{"X-Api-Key", "Cookie", "X-Forwarded-User"} {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("client header %s forwarded: %q", k, v)
		}
	}
	if v := h.Values("X-Forwarded-For"); len(v) != 1 || v[0] != "127.0.0.1" {
		t.Errorf("X-Forwarded-For = %q, want the client address only", v)
	}
	if v := h.Get("Openai-Beta"); v != "assistants=v2" {
		t.Errorf("OpenAI-Beta = %q, want it passed through", v)
	}
	for _, r := range anthropic.received() {
		t.Errorf("anthropic upstream received %s %s", r.Method, r.Path)
	}
}

func TestProxyStreamsBodyWithProviderHeaders(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{})

	sent := bytes.Repeat([]byte(`{"model":"claude-sonnet-4-6"} `), 1000)
	// A reader of unknown length makes the client send a chunked body.
	req := newRequest(t, http.MethodPost, front.URL+"/gateway/anthropic/v1/messages", io.MultiReader(bytes.NewReader(sent)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Api-Key", clientKey)
	req.Header.Set("Anthropic-Version", "2020-01-01")
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}

	got := anthropic.only(t)
	if got.Path != "/v1/messages" {
		t.Errorf("upstream path %q", got.Path)
	}
	if !bytes.Equal(got.Body, sent) {
		t.Errorf("upstream body differs: %d bytes, want %d", len(got.Body), len(sent))
	}
	if v := got.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != "sk-ant-test" {
		t.Errorf("x-api-key = %q, want the provider credential only", v)
	}
	if v := got.Header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization = %q, want none", v)
	}
	if v := got.Header.Values("Anthropic-Version"); len(v) != 1 || v[0] != "2023-06-01" {
		t.Errorf("anthropic-version = %q, want the provider's 2023-06-01", v)
	}
}

func TestProxyRoutesByModel(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{})

	// As the OpenAI Python SDK sends it: messages first, model after.
	sent := []byte(`{"messages":[{"role":"user","content":"{\"model\":\"gpt-4o\"}"}],"model":"claude-sonnet-4-6","stream":false}`)
	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions?x=1", bytes.NewReader(sent))
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}

	if n := len(openai.received()); n != 0 {
		t.Errorf("openai upstream received %d requests, want 0", n)
	}
	got := anthropic.only(t)
	if got.Path != "/v1/chat/completions" || got.RawQuery != "x=1" {
		t.Errorf("anthropic upstream saw %s?%s, want the openai URL's path", got.Path, got.RawQuery)
	}
	if !bytes.Equal(got.Body, sent) {
		t.Errorf("upstream body\n%q\nwant\n%q", got.Body, sent)
	}
	if v := got.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != "sk-ant-test" {
		t.Errorf("x-api-key = %q, want the anthropic credential", v)
	}
	if v := got.Header.Values("Authorization"); len(v) != 0 {
		t.Errorf("Authorization = %q, want none", v)
	}
	if v := got.Header.Get("Anthropic-Version"); v != "2023-06-01" {
		t.Errorf("anthropic-version = %q", v)
	}

	// A model no glob matches stays with the URL's provider.
	req = newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o"}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	if n := len(openai.received()); n != 1 {
		t.Errorf("openai upstream received %d requests, want 1", n)
	}
}

func TestProxyRejectsBadPaths(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, openai.URL), Options{})

	tests := []struct {
		path    string
		status  int
		code    string
		msgPart string
	}{
		{"/gateway/nope/v1/chat/completions", http.StatusNotFound, "unknown_provider", `unknown provider "nope"`},
		{"/gateway/", http.StatusNotFound, "unknown_provider", "no provider in path"},
		{"/gateway", http.StatusNotFound, "unknown_provider", "no provider in path"},
		{"/v1/chat/completions", http.StatusNotFound, "unknown_provider", "no provider in path"},
		{"/gateway/openai/v1/../../admin", http.StatusBadRequest, "invalid_path", "segments"},
		{"/gateway/openai/v1/%2e%2e/admin", http.StatusBadRequest, "invalid_path", "segments"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			resp, body := do(t, newRequest(t, http.MethodGet, front.URL+tt.path, nil))
			checkJSONError(t, resp, body, tt.status, tt.code, tt.msgPart)
		})
	}
	if n := len(openai.received()); n != 0 {
		t.Errorf("upstream received %d requests, want 0", n)
	}
}

func TestProxyBodyTooLarge(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{MaxRequestBodyBytes: 1000})
	big := `{"model":"gpt-4o","pad":"` + strings.Repeat("x", 2000) + `"}`

	tests := []struct {
		name    string
		path    string
		chunked bool
	}{
		{"declared length", "/gateway/anthropic/v1/messages", false},
		{"declared length, model routing", "/gateway/openai/v1/chat/completions", false},
		{"chunked, streamed", "/gateway/anthropic/v1/messages", true},
		{"chunked, model routing", "/gateway/openai/v1/chat/completions", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = strings.NewReader(big)
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req := newRequest(t, http.MethodPost, front.URL+tt.path, body)
			req.Header.Set("Content-Type", "application/json")
			resp, respBody := do(t, req)
			checkJSONError(t, resp, respBody, http.StatusRequestEntityTooLarge, "request_too_large", "larger than 1000 bytes")
		})
	}
	if n := len(openai.received()); n != 0 {
		t.Errorf("openai upstream received %d requests, want 0", n)
	}
}

func TestProxyUpstreamDown(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	front := newFront(t, testProviders(t, down.URL, down.URL), Options{})

	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/openai/v1/models", nil))
	checkJSONError(t, resp, body, http.StatusBadGateway, "upstream_unavailable", "provider openai is unavailable")
}

func TestProxyUpstreamHeaderTimeout(t *testing.T) {
	slow := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
	})
	front := newFront(t, testProviders(t, slow.URL, slow.URL), Options{UpstreamHeaderTimeout: 100 * time.Millisecond})

	start := time.Now()
	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/openai/v1/models", nil))
	checkJSONError(t, resp, body, http.StatusGatewayTimeout, "upstream_timeout", "provider openai did not respond in time")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v, want about the 100ms timeout", d)
	}
}

func TestProxyStreamsServerSentEvents(t *testing.T) {
	const events = 5
	const gap = 100 * time.Millisecond
	sse := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			if i > 0 {
				time.Sleep(gap)
			}
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	front := newFront(t, testProviders(t, sse.URL, sse.URL), Options{})

	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}

	var arrivals []time.Time
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "data: ") {
			if want := fmt.Sprintf(`data: {"n":%d}`, len(arrivals)); line != want {
				t.Errorf("event %d = %q, want %q", len(arrivals), line, want)
			}
			arrivals = append(arrivals, time.Now())
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if len(arrivals) != events {
		t.Fatalf("got %d events, want %d", len(arrivals), events)
	}
	// Sent 400ms apart end to end; buffered, they would arrive together.
	if spread := arrivals[events-1].Sub(arrivals[0]); spread < (events-1)*gap*6/10 {
		t.Errorf("events arrived within %v, want them spread over about %v", spread, (events-1)*gap)
	}
	for i := 1; i < events; i++ {
		if d := arrivals[i].Sub(arrivals[i-1]); d < gap/4 {
			t.Errorf("event %d arrived %v after event %d, want about %v", i, d, i-1, gap)
		}
	}
}

func TestProxyClientCancelCancelsUpstream(t *testing.T) {
	tests := []struct {
		name        string
		sendHeaders bool
	}{
		{"while waiting for response headers", false},
		{"while streaming the body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			upstreamDone := make(chan struct{})
			upstream := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				defer close(upstreamDone)
				if tt.sendHeaders {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "data: first\n\n")
					_ = http.NewResponseController(w).Flush()
				}
				close(started)
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
					t.Error("upstream request context was not cancelled")
				}
			})
			front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := newRequest(t, http.MethodGet, front.URL+"/gateway/anthropic/v1/stream", nil).WithContext(ctx)
			clientDone := make(chan struct{})
			go func() {
				defer close(clientDone)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()

			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("upstream never received the request")
			}
			cancelled := time.Now()
			cancel()
			select {
			case <-upstreamDone:
				if d := time.Since(cancelled); d > time.Second {
					t.Errorf("upstream saw the cancel after %v", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("upstream request context not done 5s after the client went away")
			}
			<-clientDone
		})
	}
}

// syncBuffer is a log sink safe for the server goroutines that write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestProxyMetricsAndLogs(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	reg := prometheus.NewPedanticRegistry()
	metrics := NewMetrics(reg)
	logs := &syncBuffer{}
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{
		Metrics: metrics,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogAttrs: func(r *http.Request) []slog.Attr {
			return []slog.Attr{slog.String("keyPrefix", clientKey[:12]), slog.String("owner", "alice")}
		},
	})

	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"claude-haiku"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/nope/x", nil))
	checkJSONError(t, resp, body, http.StatusNotFound, "unknown_provider", "nope")

	// The count happens as the handler returns, which can be just after the
	// client has its response.
	eventually(t, "request metrics", func() bool {
		ok200 := findMetric(t, reg, "codevector_gateway_requests_total", "provider", "anthropic", "code", "200")
		ok404 := findMetric(t, reg, "codevector_gateway_requests_total", "provider", "", "code", "404")
		return ok200 != nil && ok200.GetCounter().GetValue() == 1 && ok404 != nil && ok404.GetCounter().GetValue() == 1
	})
	latency := func(provider string) uint64 {
		m := findMetric(t, reg, "codevector_gateway_upstream_latency_seconds", "provider", provider)
		if m == nil {
			t.Fatalf("no upstream latency series for %s", provider)
		}
		return m.GetHistogram().GetSampleCount()
	}
	if n := latency("anthropic"); n != 1 {
		t.Errorf("anthropic upstream latency observations = %d, want 1", n)
	}
	if n := latency("openai"); n != 0 {
		t.Errorf("openai upstream latency observations = %d, want 0", n)
	}

	eventually(t, "two log lines", func() bool { return strings.Count(logs.String(), `msg="Proxied request"`) == 2 })
	out := logs.String()
	for _, want := range []string{
		`provider=anthropic`, `routedFrom=openai`, `model=claude-haiku`, `status=200`,
		`keyPrefix=` + clientKey[:12], `owner=alice`, `status=404`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{clientKey, "sk-ant-test", "sk-openai-test"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, out)
		}
	}
}

// findMetric returns the series of the named family whose labels are
// exactly labelPairs (name, value, name, value...), or nil.
func findMetric(t *testing.T, g prometheus.Gatherer, name string, labelPairs ...string) *dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if v, ok := labels[labelPairs[i]]; !ok || v != labelPairs[i+1] {
					continue series
				}
			}
			return m
		}
	}
	return nil
}
