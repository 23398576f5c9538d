package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

// Issue 25, item 2: every answer of the gateway itself to a wrong request
// is an OpenAI-shaped JSON error whose message says what to do instead:
// the providers it has, the URL that was probably meant, the routes a
// provider serves and where more are enabled. A browser asking for a page
// that does not exist still gets the HTML "page not found".
func TestWrongRequestsSayWhatToDo(t *testing.T) {
	env.StartManager(t, manager.Options{})
	openaiUp, anthropicUp := newUpstream(t, 0), newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, openaiUp, anthropicUp)})
	_, key := env.IssueKey(t, env.Namespace(t), "wrong")
	chat := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`
	messages := `{"model":"claude-sonnet-4-6","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}`

	for _, tt := range []struct {
		method, path, body string
		status             int
		code               string
		says               []string // what the message must contain, all of it
	}{
		// The provider's name.
		{"POST", "/gateway/opena1/v1/chat/completions", chat, 404, "unknown_provider",
			[]string{`unknown provider "opena1": this gateway has openai, anthropic`, "did you mean /gateway/openai/v1/chat/completions?"}},
		{"POST", "/gateway/OpenAI/v1/chat/completions", chat, 404, "unknown_provider", []string{"did you mean /gateway/openai/v1/chat/completions?"}},
		{"POST", "/gateway/antropic/v1/messages", messages, 404, "unknown_provider", []string{"did you mean /gateway/anthropic/v1/messages?"}},
		{"POST", "/gateway/azure/v1/chat/completions", chat, 404, "unknown_provider", []string{"this gateway has openai, anthropic", "providers file"}},
		{"POST", "/gateway/v1/chat/completions", chat, 404, "unknown_provider", []string{"did you mean /gateway/openai/v1/chat/completions?"}},
		{"GET", "/gateway/", "", 404, "unknown_provider", []string{"/gateway/{provider}/{path}", "openai, anthropic", "/gateway/openai/v1/models"}},
		{"GET", "/gateway", "", 404, "not_found", []string{"/gateway/{provider}/ (openai, anthropic)"}},
		// /v1 missing or doubled: the base URL.
		{"POST", "/gateway/openai/chat/completions", chat, 404, "route_not_enabled",
			[]string{"did you mean POST /gateway/openai/v1/chat/completions?", "base URL is /gateway/openai/v1"}},
		{"GET", "/gateway/openai/models", "", 404, "route_not_enabled", []string{"did you mean GET /gateway/openai/v1/models?"}},
		{"POST", "/gateway/openai/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`, 404, "route_not_enabled", []string{"/gateway/openai/v1/embeddings"}},
		{"POST", "/gateway/anthropic/messages", messages, 404, "route_not_enabled", []string{"did you mean POST /gateway/anthropic/v1/messages?"}},
		{"POST", "/gateway/anthropic/v1/v1/messages", messages, 404, "route_not_enabled",
			[]string{"did you mean POST /gateway/anthropic/v1/messages?", "base URL is /gateway/anthropic, without /v1"}},
		{"POST", "/gateway/openai/v1/v1/chat/completions", chat, 404, "route_not_enabled", []string{"did you mean POST /gateway/openai/v1/chat/completions?"}},
		// Another method, and routes that are off: what is on, and where.
		{"GET", "/gateway/openai/v1/chat/completions", "", 404, "route_not_enabled", []string{"only POST /gateway/openai/v1/chat/completions is", "providers.openai.routes"}},
		{"PUT", "/gateway/anthropic/v1/messages", messages, 404, "route_not_enabled", []string{"only POST /gateway/anthropic/v1/messages is"}},
		{"GET", "/gateway/openai/v1/files", "", 404, "route_not_enabled",
			[]string{"GET /v1/files is not enabled on this gateway for provider openai", "POST /gateway/openai/v1/chat/completions", "providers.openai.routes", "providers file"}},
		{"POST", "/gateway/openai/v1/batches", "{}", 404, "route_not_enabled", []string{"It serves POST /gateway/openai/v1/chat/completions"}},
		{"POST", "/gateway/anthropic/v1/messages/batches", "{}", 404, "route_not_enabled", []string{"It serves POST /gateway/anthropic/v1/messages,", "providers.anthropic.routes"}},
		{"GET", "/gateway/openai/v1/organization/users", "", 404, "route_not_enabled", []string{"providers.openai.routes"}},
		{"POST", "/gateway/openai/v2/chat/completions", chat, 404, "route_not_enabled", []string{"It serves"}},
		// Outside /gateway: the provider's own paths, as an SDK without
		// the right base URL sends them.
		{"POST", "/v1/chat/completions", chat, 404, "not_found",
			[]string{"POST /v1/chat/completions is not a route of this gateway", "did you mean POST /gateway/openai/v1/chat/completions?", "base URL is /gateway/openai/v1"}},
		{"POST", "/v1/messages", messages, 404, "not_found",
			[]string{"did you mean POST /gateway/anthropic/v1/messages?", "base URL is /gateway/anthropic"}},
		{"GET", "/v1/models", "", 404, "not_found", []string{"did you mean GET /gateway/openai/v1/models?"}},
		{"POST", "/chat/completions", chat, 404, "not_found", []string{"/gateway/{provider}/ (openai, anthropic)", "/gateway/openai/v1/models"}},
		{"POST", "/openai/v1/chat/completions", chat, 404, "not_found", []string{"/gateway/{provider}/"}},
		{"GET", "/api/v2/keys", "", 404, "not_found", []string{"/gateway/{provider}/"}},
		{"GET", "/nope", "", 404, "not_found", []string{"console at /api-keys", "docs at /docs/"}},
		{"DELETE", "/gateway-openai/v1/models", "", 404, "not_found", []string{"/gateway/{provider}/"}},
		{"GET", "/metrics", "", 404, "not_found", []string{"/gateway/{provider}/"}},
	} {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
			}
			req, err := http.NewRequest(tt.method, gw.URL+tt.path, body)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+key.Reveal())
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e struct {
				Error *struct {
					Message string  `json:"message"`
					Type    string  `json:"type"`
					Code    *string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(raw, &e); err != nil || e.Error == nil || e.Error.Code == nil {
				t.Fatalf("%d %q: not an OpenAI-shaped JSON error", resp.StatusCode, raw)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			if resp.StatusCode != tt.status || *e.Error.Code != tt.code || e.Error.Type != "invalid_request_error" {
				t.Errorf("got %d %s %s, want %d %s invalid_request_error: %s", resp.StatusCode, *e.Error.Code, e.Error.Type, tt.status, tt.code, e.Error.Message)
			}
			for _, s := range tt.says {
				if !strings.Contains(e.Error.Message, s) {
					t.Errorf("message %q lacks %q", e.Error.Message, s)
				}
			}
		})
	}
	if n := len(openaiUp.requests()) + len(anthropicUp.requests()); n != 0 {
		t.Errorf("the providers received %d of these requests, want none", n)
	}

	// A browser on a page that does not exist: the HTML page, not JSON.
	req, _ := http.NewRequest(http.MethodGet, gw.URL+"/nope", nil)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,*/*;q=0.8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), "not found") {
		t.Errorf("a browser on /nope got %d %s:\n%.300s", resp.StatusCode, resp.Header.Get("Content-Type"), page)
	}
}
