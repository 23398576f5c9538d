package providers

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

func TestRouteMatching(t *testing.T) {
	tests := []struct {
		route string
		path  string
		want  bool
	}{
		{"POST /v1/chat/completions", "/v1/chat/completions", true},
		{"POST /v1/chat/completions", "/v1/chat/completions/", false},
		{"POST /v1/chat/completions", "/v1/chat/completions/x", false},
		{"POST /v1/chat/completions", "/v1/chat", false},
		{"POST /v1/chat/completions", "/v1//chat/completions", false},
		{"POST /v1/chat/completions", "", false},
		{"POST /v1/chat/completions", "/", false},
		{"POST /v1/audio/*", "/v1/audio/speech", true},
		{"POST /v1/audio/*", "/v1/audio", false},
		{"POST /v1/audio/*", "/v1/audio/", false},
		{"POST /v1/audio/*", "/v1/audio/a/b", false},
		{"GET /v1/files/*/content", "/v1/files/file-1/content", true},
		{"GET /v1/files/*/content", "/v1/files//content", false},
		{"GET /v1/files/**", "/v1/files", true},
		{"GET /v1/files/**", "/v1/files/", true},
		{"GET /v1/files/**", "/v1/files/a/b/c", true},
		{"GET /v1/files/**", "/v1/filesx", false},
		{"GET /**", "", true},
		{"GET /**", "/anything/at/all", true},
	}
	for _, tt := range tests {
		rt, err := parseRoute(tt.route)
		if err != nil {
			t.Fatal(err)
		}
		if got := matchSegments(rt.segs, tt.path); got != tt.want {
			t.Errorf("%s on %q = %v, want %v", tt.route, tt.path, got, tt.want)
		}
	}
}

func TestParseRouteErrors(t *testing.T) {
	for spec, want := range map[string]string{
		"/v1/files":           `is not "METHOD /path"`,
		"GET":                 `is not "METHOD /path"`,
		"GET /v1/files extra": `is not "METHOD /path"`,
		"get /v1/files":       "must be an HTTP method in capitals",
		"GET v1/files":        "must start with /",
		"GET /v1/files?x=1":   "must not have a query",
		"GET /v1//files":      `empty, "." or ".." segment`,
		"GET /v1/files/":      `empty, "." or ".." segment`,
		"GET /v1/../admin":    `empty, "." or ".." segment`,
		"GET /v1/**/x":        `"**" may only be the last segment`,
		"GET /v1/file*":       "must be whole segments",
		"GET /v1/a%2Fb":       "write segments unescaped",
	} {
		if _, err := parseRoute(spec); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseRoute(%q) = %v, want an error containing %q", spec, err, want)
		}
	}
}

func routeStrings(p *Provider) []string {
	var out []string
	for _, rt := range p.Routes {
		out = append(out, rt.String())
	}
	return out
}

func TestProviderKindsAndRoutes(t *testing.T) {
	ps, err := ParseProviders([]byte(`providers:
  openai:
    baseURL: https://api.openai.com
    credential: {env: K}
    routes: [GET /v1/files, "DELETE /v1/files/*"]
  anthropic:
    baseURL: https://api.anthropic.com
  claude:
    baseURL: https://api.anthropic.com
    credential: {header: x-api-key, format: "{value}", env: K}
  vllm:
    baseURL: http://vllm:8000
    credential: {header: x-api-key, format: "{value}", env: K}
    kind: openai
  ollama:
    baseURL: http://127.0.0.1:11434/v1/
  tags:
    kind: custom
    baseURL: http://127.0.0.1:11434
    routes:
      - GET /api/tags
      - "* /api/show/**"
`), envMap(map[string]string{"K": "k"}))
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]Kind{"openai": KindOpenAI, "anthropic": KindAnthropic, "claude": KindAnthropic, "vllm": KindOpenAI, "ollama": KindOpenAI, "tags": KindCustom} {
		if got := ps.Get(name).Kind; got != want {
			t.Errorf("%s kind = %s, want %s", name, got, want)
		}
	}
	if got, want := routeStrings(ps.Get("openai")), append(routeStrings(&Provider{Routes: builtinRoutes[KindOpenAI]}), "GET /v1/files", "DELETE /v1/files/*"); !slices.Equal(got, want) {
		t.Errorf("openai routes = %q, want the built-ins then the file's: %q", got, want)
	}
	if got := routeStrings(ps.Get("tags")); !slices.Equal(got, []string{"GET /api/tags", "* /api/show/**"}) {
		t.Errorf("custom routes = %q", got)
	}

	tests := []struct {
		provider, method, rest string
		want                   bool
	}{
		{"openai", http.MethodPost, "/v1/chat/completions", true},
		{"openai", http.MethodGet, "/v1/chat/completions", false},
		{"openai", http.MethodGet, "/v1/files", true},
		{"openai", http.MethodPost, "/v1/files", false},
		{"openai", http.MethodDelete, "/v1/files/file-1", true},
		{"openai", http.MethodPost, "/v1/messages", false},
		{"anthropic", http.MethodPost, "/v1/messages", true},
		{"anthropic", http.MethodPost, "/v1/messages/batches", false},
		{"anthropic", http.MethodPost, "/v1/chat/completions", false},
		// baseURL's path is part of the provider's path.
		{"ollama", http.MethodPost, "/chat/completions", true},
		{"ollama", http.MethodPost, "/v1/chat/completions", false},
		{"ollama", http.MethodGet, "/models", true},
		{"tags", http.MethodGet, "/api/tags", true},
		{"tags", http.MethodPost, "/api/show/x/y", true},
		{"tags", http.MethodPost, "/v1/chat/completions", false},
	}
	for _, tt := range tests {
		if got := ps.Get(tt.provider).Allows(tt.method, tt.rest); got != tt.want {
			t.Errorf("%s: Allows(%s %s) = %v, want %v", tt.provider, tt.method, tt.rest, got, tt.want)
		}
	}
}

func TestParseProvidersRouteErrors(t *testing.T) {
	env := envMap(map[string]string{"K": "k"})
	tests := []struct {
		name string
		file string
		want string
	}{
		{
			name: "unknown kind",
			file: "providers:\n  a:\n    baseURL: https://a\n    kind: gemini\n",
			want: `line 4: providers.a.kind: must be openai, anthropic or custom, got "gemini"`,
		},
		{
			name: "routes not a list",
			file: "providers:\n  a:\n    baseURL: https://a\n    routes: GET /v1/files\n",
			want: `line 4: providers.a.routes: must be a list of "METHOD /path" strings, got "GET /v1/files"`,
		},
		{
			name: "bad route",
			file: "providers:\n  a:\n    baseURL: https://a\n    routes:\n      - GET /v1/files\n      - get /v1/batches\n",
			want: `line 6: providers.a.routes[1]: method "get" must be an HTTP method in capitals`,
		},
		{
			name: "route not a string",
			file: "providers:\n  a:\n    baseURL: https://a\n    routes:\n      - {GET: /v1/files}\n",
			want: `line 5: providers.a.routes[0]: must be a non-empty string, got a map`,
		},
		{
			name: "duplicate route",
			file: "providers:\n  a:\n    baseURL: https://a\n    routes:\n      - GET /v1/files\n      - GET /v1/files\n",
			want: `line 6: providers.a.routes[1]: duplicate route GET /v1/files (first listed on line 5)`,
		},
		{
			name: "route outside the base path",
			file: "providers:\n  a:\n    baseURL: http://h/v1/\n    routes:\n      - GET /api/tags\n",
			want: `line 5: providers.a.routes[0]: GET /api/tags is outside baseURL's path /v1/`,
		},
		{
			name: "custom without routes",
			file: "providers:\n  a:\n    kind: custom\n    baseURL: https://a\n",
			want: `line 3: providers.a: kind custom has no built-in routes: list the ones clients may call in "routes"`,
		},
		{
			name: "no built-in route fits the base path",
			file: "providers:\n  azure:\n    baseURL: https://x.openai.azure.com/openai/deployments/gpt\n",
			want: `line 3: providers.azure: none of kind openai's built-in routes is under baseURL's path /openai/deployments/gpt`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseProviders([]byte(tt.file), env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// BenchmarkRouteCheck is the route check on the proxy path: the first
// built-in route, the last one, and a refusal after trying them all. It
// must not allocate.
func BenchmarkRouteCheck(b *testing.B) {
	ps, err := ParseProviders([]byte("providers:\n  openai:\n    baseURL: https://api.openai.com\n"), nil)
	if err != nil {
		b.Fatal(err)
	}
	prov := ps.Get("openai")
	for _, c := range []struct{ name, method, rest string }{
		{"chat-completions", http.MethodPost, "/v1/chat/completions"},
		{"models-id", http.MethodGet, "/v1/models/gpt-4o"},
		{"refused", http.MethodGet, "/v1/organization/projects/p/api_keys"},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				prov.AllowsEscaped(c.method, c.rest, "")
			}
		})
	}
}

func TestRouteCheckAllocatesNothing(t *testing.T) {
	ps, err := ParseProviders([]byte("providers:\n  openai:\n    baseURL: https://api.openai.com\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	prov := ps.Get("openai")
	if n := testing.AllocsPerRun(1000, func() {
		prov.AllowsEscaped(http.MethodPost, "/v1/chat/completions", "")
		prov.AllowsEscaped(http.MethodGet, "/v1/files/x/content", "/v1/files/x/content")
	}); n != 0 {
		t.Errorf("route check allocates %.0f times per request", n)
	}
}
