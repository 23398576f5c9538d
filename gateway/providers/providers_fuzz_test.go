package providers

import (
	"strings"
	"testing"
)

// FuzzParseProviders: any bytes either parse into a consistent set of
// providers or produce an error that says where the problem is; nothing
// panics, and a credential value never appears in an error.
func FuzzParseProviders(f *testing.F) {
	f.Add([]byte(`providers:
  openai:
    baseURL: https://api.openai.com
    credential: {env: OPENAI_API_KEY}
    models: {"claude-*": anthropic}
  anthropic:
    baseURL: https://api.anthropic.com
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    headers: {anthropic-version: "2023-06-01"}
`))
	f.Add([]byte("providers: {}"))
	f.Add([]byte("providers:\n  a:\n    baseURL: http://[::1]:80\n"))
	f.Add([]byte("providers:\n  a:\n    baseURL: ftp://x\n    credential: {env: X, file: /y}\n"))
	f.Add([]byte("providers:\n  a: &x\n    baseURL: http://h\n  b: *x\n"))
	f.Add([]byte("\t- ["))
	f.Add([]byte("providers:\n  a:\n    baseURL: http://h\n    models: {'[': a}\n"))
	f.Add([]byte("providers:\n  a:\n    kind: custom\n    baseURL: http://h/v1/\n    routes: [GET /v1/files/*, \"* /v1/x/**\", GET /api]\n"))
	f.Add([]byte("providers:\n  a:\n    kind: anthropic\n    baseURL: http://h/x\n    routes: [POST /x/**]\n"))
	const secret = "sk-fuzz-secret-value"
	getenv := func(string) string { return secret }
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParseProviders(data, getenv)
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error reveals the credential: %v", err)
			}
			return
		}
		for _, name := range ps.Names() {
			p := ps.Get(name)
			if p == nil || p.BaseURL == nil || p.BaseURL.Host == "" {
				t.Fatalf("provider %q accepted without a usable base URL", name)
			}
			for _, m := range p.Models {
				if ps.Get(m.Provider) == nil {
					t.Fatalf("provider %q routes %q to unknown provider %q", name, m.Pattern, m.Provider)
				}
			}
			if len(p.Routes) == 0 {
				t.Fatalf("provider %q accepted with no route a client could call", name)
			}
			for _, rt := range p.Routes {
				if !validMethod(rt.Method) || !strings.HasPrefix(rt.Path, "/") {
					t.Fatalf("provider %q has route %q", name, rt)
				}
				// The route's own path, wildcards filled in, is allowed
				// when it is under baseURL's path.
				concrete := strings.NewReplacer("/**", "/x/y", "/*", "/x").Replace(rt.Path)
				if rest, ok := strings.CutPrefix(concrete, strings.TrimSuffix(p.BaseURL.Path, "/")); ok && (rest == "" || rest[0] == '/') && !p.Allows(rt.Method, rest) {
					t.Fatalf("provider %q (base path %q) does not allow %s %s, an instance of its route %s", name, p.BaseURL.Path, rt.Method, rest, rt)
				}
			}
			p.Allows(string(data[:min(len(data), 8)]), string(data))
		}
	})
}
