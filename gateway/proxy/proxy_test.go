package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/providers"
)

// recordedRequest is what a fake upstream saw.
type recordedRequest struct {
	Method      string
	Path        string
	EscapedPath string
	RawQuery    string
	Host        string
	Header      http.Header
	Body        []byte
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
			Method:      r.Method,
			Path:        r.URL.Path,
			EscapedPath: r.URL.EscapedPath(),
			RawQuery:    r.URL.RawQuery,
			Host:        r.Host,
			Header:      r.Header.Clone(),
			Body:        body,
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

// designExample is the providers file of docs/design.md, section 7.2 (the
// providers package's tests check that it parses as the document says).
const designExample = `providers:
  openai:
    baseURL: https://api.openai.com
    credential: {env: OPENAI_API_KEY}
    models:
      "claude-*": anthropic
  anthropic:
    baseURL: https://api.anthropic.com
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    headers: {anthropic-version: "2023-06-01"}
`

// testEnv holds the credentials designExample reads.
func testEnv(name string) string {
	return map[string]string{"OPENAI_API_KEY": "sk-openai-test", "ANTHROPIC_API_KEY": "sk-ant-test"}[name]
}

// testProviders is the example of docs/design.md, section 7.2, pointed at
// fake upstreams.
func testProviders(t testing.TB, openaiURL, anthropicURL string) *providers.Providers {
	t.Helper()
	file := strings.NewReplacer(
		"https://api.openai.com", openaiURL,
		"https://api.anthropic.com", anthropicURL,
	).Replace(designExample)
	ps, err := providers.ParseProviders([]byte(file), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

// newFront serves the proxy on a real HTTP server, as the gateway does.
// configure, if given, adjusts the server before it starts.
func newFront(t *testing.T, ps *providers.Providers, opts Options, configure ...func(*http.Server)) *httptest.Server {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	p := New(ps, opts)
	front := httptest.NewUnstartedServer(p)
	for _, c := range configure {
		c(front.Config)
	}
	front.Start()
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

func TestProxyKeepsEscapedPath(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	ps, err := providers.ParseProviders([]byte("providers:\n  openai:\n    baseURL: "+openai.URL+"\n    routes: [GET /v1/files/**]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	front := newFront(t, ps, Options{})

	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/openai/v1/files/org%2Fid%20x?purpose=fine-tune", nil))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	got := openai.only(t)
	if got.EscapedPath != "/v1/files/org%2Fid%20x" || got.RawQuery != "purpose=fine-tune" {
		t.Errorf("upstream saw %s?%s, want /v1/files/org%%2Fid%%20x?purpose=fine-tune", got.EscapedPath, got.RawQuery)
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
