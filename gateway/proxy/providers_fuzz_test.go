package proxy

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
		}
	})
}
