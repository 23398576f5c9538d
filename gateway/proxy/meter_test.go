package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/metering/meteringtest"
	"github.com/codevector/codevector/gateway/providers"
)

// testMeter is a Meter whose every request has a policy (unless noPolicy):
// an allowlist (nil: every model) and refuse, consulted on each Admit. It
// records what was admitted and settled, and fails the test on a second
// settle of one request.
type testMeter struct {
	t        testing.TB
	noPolicy bool
	allow    []string
	refuse   func(n int, req metering.Request) *metering.Refusal
	// clamp is every admission's ClampOutputTokens.
	clamp int64

	mu       sync.Mutex
	admits   int
	admitted []metering.Request
	settled  []metering.Usage
	// refusedBy are the reasons of the proxy's own refusals (Refused).
	refusedBy []string
}

func newTestMeter(t testing.TB) *testMeter { return &testMeter{t: t} }

func (m *testMeter) For(*http.Request) metering.RequestMeter {
	if m.noPolicy {
		return nil
	}
	return m
}

func (m *testMeter) Admit(_ context.Context, req metering.Request) metering.Admission {
	m.mu.Lock()
	m.admits++
	n := m.admits
	m.mu.Unlock()
	if m.allow != nil && req.Method == http.MethodPost && !metering.MatchModel(m.allow, req.Model) {
		return metering.Admission{Refusal: metering.ModelNotAllowed(req.Model)}
	}
	if m.refuse != nil {
		if f := m.refuse(n, req); f != nil {
			return metering.Admission{Refusal: f}
		}
	}
	m.mu.Lock()
	m.admitted = append(m.admitted, req)
	m.mu.Unlock()
	settled := false
	return metering.Admission{Settle: func(u metering.Usage) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if settled {
			m.t.Errorf("request %+v settled twice", req)
		}
		settled = true
		m.settled = append(m.settled, u)
	}, ClampOutputTokens: m.clamp}
}

func (m *testMeter) Refused(reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refusedBy = append(m.refusedBy, reason)
}

func (m *testMeter) AllowsModel(model string) bool {
	return m.allow == nil || metering.MatchModel(m.allow, model)
}

func (m *testMeter) admitCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.admits
}

// waitSettled waits until every admitted request has settled (the client
// can have its whole response before the handler returns) and returns the
// one usage of the one admitted request.
func (m *testMeter) only(t *testing.T) (metering.Request, metering.Usage) {
	t.Helper()
	eventually(t, "the request to settle", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.admitted) > 0 && len(m.settled) == len(m.admitted)
	})
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.admitted) != 1 {
		t.Fatalf("%d requests admitted, want 1", len(m.admitted))
	}
	return m.admitted[0], m.settled[0]
}

// streamUpstream answers like OpenAI's chat completions: the stream with or
// without usage as the request's stream_options ask, one event per write
// and flush, the second event cut in two writes.
func streamUpstream(t *testing.T) *fakeUpstream {
	var u *fakeUpstream
	u = newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests[len(u.requests)-1].Body = body
		u.mu.Unlock()
		var req struct {
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		if err := json.Unmarshal(body, &req); err != nil {
			t.Errorf("upstream: %v", err)
		}
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		rc := http.NewResponseController(w)
		for i, ev := range meteringtest.ChatStream(req.StreamOptions.IncludeUsage) {
			parts := []string{ev}
			if i == 1 {
				parts = []string{ev[:20], ev[20:]}
			}
			for _, p := range parts {
				_, _ = io.WriteString(w, p)
				_ = rc.Flush()
			}
		}
	})
	return u
}

// recordingUpstream records request bodies and answers with answer.
func recordingUpstream(t *testing.T, contentType, answer string) *fakeUpstream {
	var u *fakeUpstream
	u = newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.requests[len(u.requests)-1].Body = body
		u.mu.Unlock()
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, answer)
	})
	return u
}

func postJSON(t *testing.T, url, body string) *http.Request {
	req := newRequest(t, http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	return req
}

func TestMeterStreamHidesUsageTheClientDidNotAsk(t *testing.T) {
	upstream := streamUpstream(t)
	m := newTestMeter(t)
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	sent := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	req := postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", sent)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, body := do(t, req)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if want := strings.Join(meteringtest.ChatStream(false), ""); string(body) != want {
		t.Errorf("client received\n%s\nwant exactly what the upstream sends without usage\n%s", body, want)
	}
	got := upstream.only(t)
	if want := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}],"stream_options":{"include_usage":true}}`; string(got.Body) != want {
		t.Errorf("upstream received %s\nwant %s", got.Body, want)
	}
	if ae := got.Header.Get("Accept-Encoding"); ae != "" {
		t.Errorf("upstream received Accept-Encoding %q: a compressed answer could not be metered", ae)
	}

	admitted, u := m.only(t)
	want := metering.Request{Provider: "openai", Kind: providers.KindOpenAI, Method: http.MethodPost, Path: "/v1/chat/completions",
		Model: "gpt-4o", Stream: true, Billing: metering.BillingTokens, EstimatedInputTokens: int64(len(sent)+3) / 4,
		MaxOutputTokens: providers.DefaultMaxOutputTokens[providers.KindOpenAI], Answers: 1}
	if admitted != want {
		t.Errorf("admitted %+v\nwant %+v", admitted, want)
	}
	if wantU := (metering.Usage{Model: "gpt-4o", Status: 200, InputTokens: 9, OutputTokens: 12, Complete: true}); u != wantU {
		t.Errorf("settled %+v, want %+v", u, wantU)
	}
}

func TestMeterStreamPassesUsageTheClientAsked(t *testing.T) {
	upstream := streamUpstream(t)
	m := newTestMeter(t)
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	sent := `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true},"max_tokens":50}`
	resp, body := do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", sent))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if want := strings.Join(meteringtest.ChatStream(true), ""); string(body) != want {
		t.Errorf("client received\n%s\nwant\n%s", body, want)
	}
	if got := upstream.only(t); string(got.Body) != sent {
		t.Errorf("upstream received %s, want the body as sent", got.Body)
	}
	admitted, u := m.only(t)
	if admitted.MaxOutputTokens != 50 {
		t.Errorf("MaxOutputTokens = %d, want 50", admitted.MaxOutputTokens)
	}
	if u.InputTokens != 9 || u.OutputTokens != 12 || !u.Complete || u.Estimated {
		t.Errorf("settled %+v", u)
	}
}

func TestMeterUsageFormats(t *testing.T) {
	tests := []struct {
		name, path, contentType, answer string
		input, output                   int64
	}{
		{"openai chat json", "/gateway/openai/v1/chat/completions", "application/json", meteringtest.OpenAIChatJSON, 19, 10},
		{"openai embeddings json", "/gateway/openai/v1/embeddings", "application/json", meteringtest.OpenAIEmbeddingsJSON, 8, 0},
		{"openai responses json", "/gateway/openai/v1/responses", "application/json", meteringtest.OpenAIResponsesJSON, 36, 87},
		{"openai responses sse", "/gateway/openai/v1/responses", "text/event-stream", meteringtest.OpenAIResponsesSSE, 37, 11},
		{"openai chat sse", "/gateway/openai/v1/chat/completions", "text/event-stream", strings.Join(meteringtest.ChatStream(true), ""), 9, 12},
		{"anthropic json", "/gateway/anthropic/v1/messages", "application/json", meteringtest.AnthropicJSON, 1112, 6},
		{"anthropic sse", "/gateway/anthropic/v1/messages", "text/event-stream", meteringtest.AnthropicSSE, 29, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := recordingUpstream(t, tt.contentType, tt.answer)
			m := newTestMeter(t)
			front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

			// Not a stream request: nothing is injected, whatever comes back
			// is read.
			resp, body := do(t, postJSON(t, front.URL+tt.path, `{"model":"gpt-4o","input":"hi"}`))
			if resp.StatusCode != http.StatusOK || string(body) != tt.answer {
				t.Fatalf("response %d %s", resp.StatusCode, body)
			}
			_, u := m.only(t)
			if u.InputTokens != tt.input || u.OutputTokens != tt.output || !u.Complete || u.Estimated {
				t.Errorf("settled %+v, want %d in, %d out, complete, not estimated", u, tt.input, tt.output)
			}
		})
	}
}

func TestMeterClientGoneMidStreamSettlesWhatWasDelivered(t *testing.T) {
	events := meteringtest.ChatStream(true)
	upstreamDone := make(chan struct{})
	upstream := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		defer close(upstreamDone)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for _, ev := range events[:3] { // role, "Hel", "lo"; no usage yet
			_, _ = io.WriteString(w, ev)
			_ = rc.Flush()
		}
		<-r.Context().Done()
	})
	m := newTestMeter(t)
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sent := `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp, err := http.DefaultClient.Do(postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", sent).WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.Contains(lines.Text(), `"lo"`) {
			break
		}
	}
	cancel()
	resp.Body.Close()
	select {
	case <-upstreamDone:
	case <-time.After(5 * time.Second):
		t.Fatal("upstream request not cancelled")
	}

	admitted, u := m.only(t)
	// "assistant", "", "Hel", "lo": 14 bytes of text, 4 tokens.
	want := metering.Usage{Model: "gpt-4o", Status: 200, InputTokens: admitted.EstimatedInputTokens, OutputTokens: 4, Complete: false, Estimated: true}
	if u != want {
		t.Errorf("settled %+v, want %+v", u, want)
	}
}

func TestMeterUpstreamCutMidStream(t *testing.T) {
	// Anthropic reported input in message_start, then the connection broke.
	cutAt := strings.Index(meteringtest.AnthropicSSE, "event: content_block_stop")
	upstream := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, meteringtest.AnthropicSSE[:cutAt])
		_ = http.NewResponseController(w).Flush()
		panic(http.ErrAbortHandler)
	})
	m := newTestMeter(t)
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	resp, err := http.DefaultClient.Do(postJSON(t, front.URL+"/gateway/anthropic/v1/messages", `{"model":"claude-sonnet-4-6","stream":true}`))
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	_, u := m.only(t)
	// Input as reported; output: "text_delta" + "Hello" delivered, 15 bytes,
	// 4 tokens, more than message_start's 1.
	want := metering.Usage{Model: "claude-sonnet-4-6", Status: 200, InputTokens: 29, OutputTokens: 4, Complete: false, Estimated: true}
	if u != want {
		t.Errorf("settled %+v, want %+v", u, want)
	}
}

func TestMeterErrorsSettleWithZero(t *testing.T) {
	failing := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		// Even an error that mentions usage costs nothing.
		_, _ = io.WriteString(w, `{"error":{"message":"boom"},"usage":{"prompt_tokens":5}}`)
	})
	tests := []struct {
		name, url string
		status    int
	}{
		{"upstream 500", failing.URL, http.StatusInternalServerError},
		{"upstream unreachable", "http://127.0.0.1:1", http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMeter(t)
			front := newFront(t, testProviders(t, tt.url, tt.url), Options{Meter: m})
			resp, body := do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"model":"gpt-4o"}`))
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			_, u := m.only(t)
			if want := (metering.Usage{Model: "gpt-4o", Status: tt.status, Complete: true}); u != want {
				t.Errorf("settled %+v, want %+v", u, want)
			}
		})
	}
}

func TestMeterFreeRoutesAndUnreportedUsage(t *testing.T) {
	tests := []struct {
		name, path, answer string
		want               func(req metering.Request) metering.Usage
	}{
		{
			name: "count_tokens is free", path: "/gateway/anthropic/v1/messages/count_tokens", answer: `{"input_tokens":12}`,
			want: func(metering.Request) metering.Usage { return metering.Usage{Model: "m", Status: 200, Complete: true} },
		},
		{
			name: "moderations are free", path: "/gateway/openai/v1/moderations", answer: `{"id":"modr-1","results":[]}`,
			want: func(metering.Request) metering.Usage { return metering.Usage{Model: "m", Status: 200, Complete: true} },
		},
		{
			name: "no usage reported: estimated", path: "/gateway/openai/v1/chat/completions",
			answer: `{"choices":[{"message":{"content":"12345678"}}]}`,
			want: func(req metering.Request) metering.Usage {
				return metering.Usage{Model: "m", Status: 200, InputTokens: req.EstimatedInputTokens, OutputTokens: 2, Complete: true, Estimated: true}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			upstream := recordingUpstream(t, "application/json", tt.answer)
			m := newTestMeter(t)
			front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})
			if resp, body := do(t, postJSON(t, front.URL+tt.path, `{"model":"m","input":"x"}`)); resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			req, u := m.only(t)
			if want := tt.want(req); u != want {
				t.Errorf("settled %+v, want %+v", u, want)
			}
		})
	}
}

func TestMeterRefusals(t *testing.T) {
	upstream := newFakeUpstream(t, nil)
	m := newTestMeter(t)
	m.allow = []string{"gpt-4o*", "claude-sonnet-*"}
	m.refuse = func(_ int, req metering.Request) *metering.Refusal {
		if req.Model == "gpt-4o-mini" {
			return metering.RateLimitExceeded("Rate limit of 1 request per minute reached.", 30*time.Second,
				&metering.RateLimit{Limit: 1, Remaining: 0, Reset: 30 * time.Second}, nil)
		}
		return nil
	}
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	resp, body := do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"model":"gpt-4.1"}`))
	checkJSONError(t, resp, body, http.StatusForbidden, "model_not_allowed", `"gpt-4.1"`)

	resp, body = do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"messages":[]}`))
	checkJSONError(t, resp, body, http.StatusForbidden, "model_not_allowed", "names none")

	resp, body = do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"model":"gpt-4o-mini"}`))
	checkJSONError(t, resp, body, http.StatusTooManyRequests, "rate_limit_exceeded", "1 request per minute")
	for k, v := range map[string]string{"Retry-After": "30", "Retry-After-Ms": "30000", "X-Ratelimit-Reset-Requests": "30s", "X-Ratelimit-Remaining-Requests": "0"} {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}

	resp, body = do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"model":"gpt-4o","model":"gpt-4.1"}`))
	checkJSONError(t, resp, body, http.StatusBadRequest, "invalid_body", "more than once")

	if n := len(upstream.received()); n != 0 {
		t.Errorf("upstream received %d refused requests", n)
	}

	// Routed by model: admitted as the provider that serves it.
	if resp, body := do(t, postJSON(t, front.URL+"/gateway/openai/v1/chat/completions", `{"model":"claude-sonnet-4-6"}`)); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if req, _ := m.only(t); req.Provider != "anthropic" || req.Kind != providers.KindAnthropic {
		t.Errorf("admitted as %s (%s), want anthropic", req.Provider, req.Kind)
	}
}

func TestMeterModelListings(t *testing.T) {
	const openAIList = `{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"system"},{"id":"gpt-4.1","object":"model","created":2,"owned_by":"system"},{"id":"gpt-4o-mini","object":"model","created":3,"owned_by":"system"}]}`
	const anthropicList = `{"data":[{"type":"model","id":"claude-opus-4-1","display_name":"Claude Opus 4.1","created_at":"2025-08-05T00:00:00Z"},{"type":"model","id":"claude-sonnet-4-6","display_name":"Claude Sonnet 4.6","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-opus-4-1","last_id":"claude-sonnet-4-6"}`
	openai := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/models" {
			_, _ = io.WriteString(w, openAIList)
			return
		}
		_, _ = io.WriteString(w, `{"id":"`+strings.TrimPrefix(r.URL.Path, "/v1/models/")+`","object":"model"}`)
	})
	anthropic := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// Chunked, flushed half way: the listing must still arrive whole.
		_, _ = io.WriteString(w, anthropicList[:40])
		_ = http.NewResponseController(w).Flush()
		_, _ = io.WriteString(w, anthropicList[40:])
	})
	m := newTestMeter(t)
	m.allow = []string{"gpt-4o*", "claude-sonnet-*"}
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{Meter: m})

	get := func(path string) (*http.Response, []byte) {
		req := newRequest(t, http.MethodGet, front.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+clientKey)
		return do(t, req)
	}
	resp, body := get("/gateway/openai/v1/models")
	if want := `{"object":"list","data":[{"id":"gpt-4o","object":"model","created":1,"owned_by":"system"},{"id":"gpt-4o-mini","object":"model","created":3,"owned_by":"system"}]}`; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("openai listing %d %s\nwant %s", resp.StatusCode, body, want)
	}
	resp, body = get("/gateway/anthropic/v1/models")
	if want := `{"data":[{"type":"model","id":"claude-sonnet-4-6","display_name":"Claude Sonnet 4.6","created_at":"2025-09-29T00:00:00Z"}],"has_more":false,"first_id":"claude-opus-4-1","last_id":"claude-sonnet-4-6"}`; resp.StatusCode != 200 || string(body) != want {
		t.Errorf("anthropic listing %d %s\nwant %s", resp.StatusCode, body, want)
	}
	resp, body = get("/gateway/openai/v1/models/gpt-4.1")
	checkJSONError(t, resp, body, http.StatusNotFound, "model_not_found", `"gpt-4.1" does not exist`)
	resp, body = get("/gateway/openai/v1/models/gpt-4o")
	if resp.StatusCode != 200 || string(body) != `{"id":"gpt-4o","object":"model"}` {
		t.Errorf("allowed model lookup %d %s", resp.StatusCode, body)
	}
	if n := len(openai.received()); n != 2 {
		t.Errorf("openai received %d requests, want the listing and the allowed lookup", n)
	}
	eventually(t, "settles", func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.settled) == 3
	})
	for _, u := range m.settled {
		if u.InputTokens != 0 || u.OutputTokens != 0 {
			t.Errorf("a GET settled with tokens: %+v", u)
		}
	}
}

func TestMeterWithoutPolicyChangesNothing(t *testing.T) {
	upstream := recordingUpstream(t, "application/json", meteringtest.OpenAIChatJSON)
	m := newTestMeter(t)
	m.noPolicy = true
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})

	sent := `{"model":"gpt-4o","stream":true,"model":"dup"}`
	req := postJSON(t, front.URL+"/gateway/anthropic/v1/messages", sent)
	req.Header.Set("Accept-Encoding", "gzip")
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK || string(body) != meteringtest.OpenAIChatJSON {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	got := upstream.only(t)
	if !bytes.Equal(got.Body, []byte(sent)) || got.Header.Get("Accept-Encoding") != "gzip" {
		t.Errorf("upstream received %s with Accept-Encoding %q", got.Body, got.Header.Get("Accept-Encoding"))
	}
	if n := m.admitCount(); n != 0 {
		t.Errorf("Admit called %d times for a key without policy", n)
	}
}
