package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

// send makes one request through the gateway with key (none if empty) and
// returns the status and the error code of a JSON error body ("" if none).
func send(t *testing.T, method, url, key string, header http.Header, body string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &e)
	if e.Error.Code == "route_not_enabled" && !strings.Contains(e.Error.Message, "not enabled on this gateway") {
		t.Errorf("%s %s: message %q does not say the route is not enabled on this gateway", method, url, e.Error.Message)
	}
	return resp.StatusCode, e.Error.Code
}

// Issue 11, item 1: a key holder reaches only inference endpoints by
// default. Endpoints that keep data under the provider's one identity
// (files, batches, stored completions, organization) answer 404 without
// reaching the provider, and the client's account headers are dropped.
func TestOnlyInferenceRoutesReachTheProvider(t *testing.T) {
	env.StartManager(t, manager.Options{})
	openaiUp, anthropicUp := newUpstream(t, 0), newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, openaiUp, anthropicUp)})
	_, key := env.IssueKey(t, env.Namespace(t), "routes")
	chatBody := `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`

	refused := []struct{ method, path string }{
		{http.MethodGet, "/gateway/openai/v1/files"},
		{http.MethodPost, "/gateway/openai/v1/files"},
		{http.MethodDelete, "/gateway/openai/v1/files/file-abc123"},
		{http.MethodGet, "/gateway/openai/v1/files/file-abc123/content"},
		{http.MethodGet, "/gateway/openai/v1/batches"},
		{http.MethodPost, "/gateway/openai/v1/batches"},
		{http.MethodGet, "/gateway/openai/v1/chat/completions"},                 // stored completions
		{http.MethodGet, "/gateway/openai/v1/chat/completions/chatcmpl-1"},      // one stored completion
		{http.MethodDelete, "/gateway/openai/v1/chat/completions/chatcmpl-1"},   // and deleting it
		{http.MethodGet, "/gateway/openai/v1/responses/resp_1"},                 // stored responses
		{http.MethodGet, "/gateway/openai/v1/organization/users"},               // admin API
		{http.MethodGet, "/gateway/openai/v1/organization/projects/p/api_keys"}, // admin API
		{http.MethodPost, "/gateway/openai/v1/assistants"},
		{http.MethodPost, "/gateway/openai/v1/vector_stores"},
		{http.MethodPost, "/gateway/openai/v1/fine_tuning/jobs"},
		{http.MethodDelete, "/gateway/openai/v1/models/ft:gpt-4o:org:x"},
		{http.MethodPost, "/gateway/openai/v1/chat/completions/"},
		{http.MethodPost, "/gateway/openai"},
		{http.MethodPost, "/gateway/openai/v1/chat%2Fcompletions"},
		{http.MethodPost, "/gateway/anthropic/v1/messages/batches"},
		{http.MethodGet, "/gateway/anthropic/v1/files"},
		{http.MethodPost, "/gateway/anthropic/v1/chat/completions"}, // an OpenAI route on an Anthropic provider
	}
	for _, rt := range refused {
		// Authentication comes first: without a key, 401 whatever the route.
		if status, code := send(t, rt.method, gw.URL+rt.path, "", nil, ""); status != http.StatusUnauthorized || code != "invalid_api_key" {
			t.Errorf("%s %s without a key: %d %q, want 401 invalid_api_key", rt.method, rt.path, status, code)
		}
		body := ""
		if rt.method == http.MethodPost {
			body = chatBody
		}
		if status, code := send(t, rt.method, gw.URL+rt.path, key.Reveal(), nil, body); status != http.StatusNotFound || code != "route_not_enabled" {
			t.Errorf("%s %s: %d %q, want 404 route_not_enabled", rt.method, rt.path, status, code)
		}
	}
	if n := len(openaiUp.requests()) + len(anthropicUp.requests()); n != 0 {
		for _, r := range append(openaiUp.requests(), anthropicUp.requests()...) {
			t.Errorf("provider received %s %s", r.Method, r.Path)
		}
	}

	// The inference routes work, and the client cannot pick the provider
	// account's organization or project.
	header := http.Header{"Openai-Organization": {"org-victim"}, "Openai-Project": {"proj-victim"}, "Openai-Beta": {"assistants=v2"}}
	allowed := []struct{ method, path, body string }{
		{http.MethodPost, "/gateway/openai/v1/chat/completions", chatBody},
		{http.MethodPost, "/gateway/openai/v1/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`},
		{http.MethodGet, "/gateway/openai/v1/models", ""},
		{http.MethodGet, "/gateway/openai/v1/models/gpt-4o", ""},
		{http.MethodPost, "/gateway/anthropic/v1/messages", `{"model":"claude-sonnet-4-6","messages":[]}`},
		{http.MethodPost, "/gateway/anthropic/v1/messages/count_tokens", `{"model":"claude-sonnet-4-6","messages":[]}`},
	}
	for _, rt := range allowed {
		if status, code := send(t, rt.method, gw.URL+rt.path, key.Reveal(), header, rt.body); code == "route_not_enabled" || status == http.StatusUnauthorized {
			t.Errorf("%s %s: %d %q, want it proxied", rt.method, rt.path, status, code)
		}
	}
	got := append(openaiUp.requests(), anthropicUp.requests()...)
	if len(got) != len(allowed) {
		t.Fatalf("providers received %d requests, want %d", len(got), len(allowed))
	}
	for _, r := range got {
		if v := r.Header.Values("Openai-Organization"); len(v) != 0 {
			t.Errorf("%s %s: client's OpenAI-Organization reached the provider: %q", r.Method, r.Path, v)
		}
		if v := r.Header.Values("Openai-Project"); len(v) != 0 {
			t.Errorf("%s %s: client's OpenAI-Project reached the provider: %q", r.Method, r.Path, v)
		}
		if v := r.Header.Get("Openai-Beta"); v != "assistants=v2" {
			t.Errorf("%s %s: OpenAI-Beta = %q, want it passed through", r.Method, r.Path, v)
		}
	}
}

// An operator who lists a storage route in routes: turns it on for every
// key, and the provider's own organization header (headers:) is the only
// one that reaches it.
func TestOperatorListedRoutesAndAccountHeaders(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	yaml := fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential: {env: OPENAI_API_KEY}
    headers: {OpenAI-Organization: org-gateway, OpenAI-Project: proj-gateway}
    routes:
      - GET /v1/files
      - GET /v1/files/*
  local:
    kind: custom
    baseURL: %s/v1/
    routes:
      - POST /v1/chat/completions
`, up.URL, up.URL)
	ps, err := providers.ParseProviders([]byte(yaml), func(string) string { return "sk-upstream-openai" })
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, server.Options{Providers: ps})
	_, key := env.IssueKey(t, env.Namespace(t), "files")
	header := http.Header{"Openai-Organization": {"org-victim"}, "Openai-Project": {"proj-victim"}}

	cases := []struct {
		method, path, body string
		want               bool
	}{
		{http.MethodGet, "/gateway/openai/v1/files", "", true},
		{http.MethodGet, "/gateway/openai/v1/files/file-1", "", true},
		{http.MethodDelete, "/gateway/openai/v1/files/file-1", "", false},
		{http.MethodGet, "/gateway/openai/v1/files/file-1/content", "", false},
		{http.MethodPost, "/gateway/openai/v1/chat/completions", `{"model":"gpt-4o","messages":[]}`, true}, // built-in, still on
		// baseURL's path is part of the route: /gateway/local/chat/completions
		// reaches the provider's /v1/chat/completions.
		{http.MethodPost, "/gateway/local/chat/completions", `{"model":"llama","messages":[]}`, true},
		{http.MethodPost, "/gateway/local/embeddings", `{"model":"llama","input":"x"}`, false}, // kind custom: no built-ins
	}
	for _, c := range cases {
		status, code := send(t, c.method, gw.URL+c.path, key.Reveal(), header, c.body)
		if got := code != "route_not_enabled"; got != c.want || status == http.StatusUnauthorized {
			t.Errorf("%s %s: %d %q, want proxied=%v", c.method, c.path, status, code, c.want)
		}
	}
	for _, r := range up.requests() {
		if strings.HasPrefix(r.Path, "/v1/files") {
			if org, proj := r.Header.Values("Openai-Organization"), r.Header.Values("Openai-Project"); len(org) != 1 || org[0] != "org-gateway" || len(proj) != 1 || proj[0] != "proj-gateway" {
				t.Errorf("%s %s: organization %q project %q, want only the providers file's", r.Method, r.Path, org, proj)
			}
		}
	}
}
