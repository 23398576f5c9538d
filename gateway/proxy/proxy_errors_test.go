package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

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

// A middleware that cancels the request (as authentication may on
// revocation) gets its reason to the client, not an empty 200.
func TestProxyCancelledByMiddleware(t *testing.T) {
	started := make(chan struct{})
	upstream := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	})
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{}, func(s *http.Server) {
		next := s.Handler
		s.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			ctx, cancel := context.WithCancelCause(r.Context())
			defer cancel(nil)
			go func() {
				select {
				case <-started:
					cancel(errors.New("API key revoked"))
				case <-ctx.Done():
				}
			}()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	})

	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/openai/v1/models", nil))
	checkJSONError(t, resp, body, http.StatusBadGateway, "request_cancelled", "request cancelled: API key revoked")
}

// A refused route is answered by the gateway, never by the provider, and
// the escaped form the provider would receive must match the same route.
func TestProxyRefusesRoutesNotEnabled(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	front := newFront(t, testProviders(t, openai.URL, openai.URL), Options{})
	for _, tt := range []struct{ method, path string }{
		{http.MethodGet, "/gateway/openai/v1/files"},
		{http.MethodGet, "/gateway/openai/v1/chat/completions"},
		{http.MethodPost, "/gateway/openai/v1/chat%2Fcompletions"},
		{http.MethodGet, "/gateway/openai/v1/models/a%2Fb"},
		{http.MethodPost, "/gateway/anthropic/v1/messages/batches"},
		{http.MethodPost, "/gateway/openai"},
	} {
		resp, body := do(t, newRequest(t, tt.method, front.URL+tt.path, nil))
		checkJSONError(t, resp, body, http.StatusNotFound, "route_not_enabled", "is not enabled on this gateway for provider")
	}
	if n := len(openai.received()); n != 0 {
		t.Errorf("upstream received %d requests, want 0", n)
	}
	resp, body := do(t, newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat%2Fcompletions", nil))
	checkJSONError(t, resp, body, http.StatusNotFound, "route_not_enabled", "POST /v1/chat%2Fcompletions is not enabled")
	resp, body = do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/openai/v1/models/gpt%2D4o", nil))
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /v1/models/gpt%%2D4o = %d %s, want it proxied", resp.StatusCode, body)
	}
}
