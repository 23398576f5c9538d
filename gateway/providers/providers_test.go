package providers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// designExample is the providers file of docs/design.md, section 7.2, verbatim.
const designExample = `providers:
  openai:
    baseURL: https://api.openai.com      # the rest of the path is appended
    credential:
      header: Authorization              # default
      format: "Bearer {value}"           # default
      env: OPENAI_API_KEY                # or file: /var/run/secrets/openai/key
    models:
      "claude-*": anthropic              # same path, other provider
  anthropic:
    baseURL: https://api.anthropic.com
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    headers: {anthropic-version: "2023-06-01"}
`

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var testEnv = envMap(map[string]string{
	"OPENAI_API_KEY":    "sk-openai-test",
	"ANTHROPIC_API_KEY": " sk-ant-test\n", // trimmed
})

func TestParseProvidersDesignExample(t *testing.T) {
	ps, err := ParseProviders([]byte(designExample), testEnv)
	if err != nil {
		t.Fatalf("ParseProviders: %v", err)
	}
	if got := strings.Join(ps.Names(), ","); got != "openai,anthropic" {
		t.Errorf("Names() = %s, want openai,anthropic (file order)", got)
	}

	openai := ps.Get("openai")
	if openai == nil {
		t.Fatal("openai missing")
	}
	if got := openai.BaseURL.String(); got != "https://api.openai.com" {
		t.Errorf("openai baseURL = %s", got)
	}
	c := openai.Credential
	if c == nil {
		t.Fatal("openai credential missing")
	}
	if c.Header != "Authorization" || c.Format != "Bearer {value}" || c.Env != "OPENAI_API_KEY" || c.File != "" {
		t.Errorf("openai credential = %+v", c)
	}
	if v, err := c.HeaderValues(); err != nil || len(v) != 1 || v[0] != "Bearer sk-openai-test" {
		t.Errorf("openai header value = %q, %v", v, err)
	}
	if len(openai.Models) != 1 || openai.Models[0] != (ModelRoute{Pattern: "claude-*", Provider: "anthropic"}) {
		t.Errorf("openai models = %+v", openai.Models)
	}
	if got := openai.Route("claude-sonnet-4-6"); got != "anthropic" {
		t.Errorf("Route(claude-sonnet-4-6) = %q, want anthropic", got)
	}
	if got := openai.Route("gpt-4o"); got != "" {
		t.Errorf("Route(gpt-4o) = %q, want none", got)
	}

	anthropic := ps.Get("anthropic")
	if anthropic == nil {
		t.Fatal("anthropic missing")
	}
	if got := anthropic.BaseURL.String(); got != "https://api.anthropic.com" {
		t.Errorf("anthropic baseURL = %s", got)
	}
	c = anthropic.Credential
	if c.Header != "X-Api-Key" || c.Format != "{value}" || c.Env != "ANTHROPIC_API_KEY" {
		t.Errorf("anthropic credential = %+v", c)
	}
	if v, _ := c.HeaderValues(); len(v) != 1 || v[0] != "sk-ant-test" {
		t.Errorf("anthropic header value = %q, want trimmed sk-ant-test", v)
	}
	if got := anthropic.Headers.Get("anthropic-version"); got != "2023-06-01" {
		t.Errorf("anthropic-version = %q", got)
	}
	if len(anthropic.Models) != 0 {
		t.Errorf("anthropic models = %+v, want none", anthropic.Models)
	}
	if ps.Get("nope") != nil {
		t.Error("Get(nope) != nil")
	}
}

func TestParseProvidersOptionalParts(t *testing.T) {
	ps, err := ParseProviders([]byte(`
providers:
  local:
    baseURL: http://127.0.0.1:11434/v1/
  unquoted:
    baseURL: https://example.com
    credential: {env: KEY}
    headers:
      x-version: 2023-06-01
      x-count: 3
    models:
      "meta-llama/*": local
      "*": local
`), envMap(map[string]string{"KEY": "k"}))
	if err != nil {
		t.Fatalf("ParseProviders: %v", err)
	}
	if c := ps.Get("local").Credential; c != nil {
		t.Errorf("local credential = %+v, want nil", c)
	}
	u := ps.Get("unquoted")
	// Scalars are taken as written, not as YAML would type them.
	if got := u.Headers.Get("X-Version"); got != "2023-06-01" {
		t.Errorf("x-version = %q", got)
	}
	if got := u.Headers.Get("X-Count"); got != "3" {
		t.Errorf("x-count = %q", got)
	}
	if v, _ := u.Credential.HeaderValues(); v[0] != "Bearer k" {
		t.Errorf("default format gave %q", v[0])
	}
	if got := u.Route("meta-llama/Llama-3"); got != "local" {
		t.Errorf("Route(meta-llama/Llama-3) = %q", got)
	}
}

func TestParseProvidersErrors(t *testing.T) {
	dir := t.TempDir()
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := envMap(map[string]string{"OPENAI_API_KEY": "sk"})

	tests := []struct {
		name string
		file string
		want []string // substrings of the error, all required
	}{
		{
			// yaml.v3 names the line where the broken block starts.
			name: "bad YAML",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n   credential: {}\n",
			want: []string{"line 1: did not find expected key"},
		},
		{
			name: "bad YAML in a flow map",
			file: "providers:\n  openai: {baseURL: https://api.openai.com\n  anthropic: {}\n",
			want: []string{"line 1: did not find expected ',' or '}'"},
		},
		{
			name: "tab indentation",
			file: "providers:\n\topenai: {}\n",
			want: []string{"line 2: found character that cannot start any token"},
		},
		{
			name: "empty file",
			file: "",
			want: []string{`file is empty: expected a top-level "providers" map`},
		},
		{
			name: "unknown top-level field",
			file: "provider:\n  openai: {}\n",
			want: []string{`line 1: (top level): unknown field "provider"`},
		},
		{
			name: "unknown credential field",
			file: `providers:
  openai:
    baseURL: https://api.openai.com
    credential:
      header: Authorization
      format: "Bearer {value}"
      envv: OPENAI_API_KEY
`,
			want: []string{`line 7: providers.openai.credential: unknown field "envv"`},
		},
		{
			name: "unknown provider field",
			file: "providers:\n  openai:\n    baseUrl: https://api.openai.com\n",
			want: []string{
				`line 3: providers.openai: unknown field "baseUrl"`,
				`line 3: providers.openai: missing required field "baseURL"`,
			},
		},
		{
			name: "missing baseURL",
			file: "providers:\n  openai:\n    credential: {env: OPENAI_API_KEY}\n",
			want: []string{`line 3: providers.openai: missing required field "baseURL"`},
		},
		{
			name: "relative baseURL",
			file: "providers:\n  openai:\n    baseURL: api.openai.com/v1\n",
			want: []string{`line 3: providers.openai.baseURL: must be an absolute http or https URL with a host, got "api.openai.com/v1"`},
		},
		{
			name: "baseURL with another scheme",
			file: "providers:\n  openai:\n    baseURL: ftp://api.openai.com\n",
			want: []string{`line 3: providers.openai.baseURL: must be an absolute http or https URL`},
		},
		{
			name: "baseURL with a query",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com/?key=1\n",
			want: []string{`line 3: providers.openai.baseURL: must not have a query or fragment`},
		},
		{
			name: "both env and file",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      env: OPENAI_API_KEY\n      file: /x\n",
			want: []string{`line 5: providers.openai.credential: set exactly one of "env" or "file", not both`},
		},
		{
			name: "neither env nor file",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential: {header: x-api-key}\n",
			want: []string{`line 4: providers.openai.credential: set one of "env" or "file"`},
		},
		{
			name: "env var unset",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      env: MISSING_KEY\n",
			want: []string{`line 5: providers.openai.credential.env: environment variable MISSING_KEY is not set or empty`},
		},
		{
			name: "file missing",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      file: " + filepath.Join(dir, "nope") + "\n",
			want: []string{`line 5: providers.openai.credential.file: reading credential file: stat ` + filepath.Join(dir, "nope") + `: no such file or directory`},
		},
		{
			name: "file empty",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      file: " + emptyFile + "\n",
			want: []string{`line 5: providers.openai.credential.file: credential file ` + emptyFile + ` is empty`},
		},
		{
			name: "format without placeholder",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      format: Bearer\n      env: OPENAI_API_KEY\n",
			want: []string{`line 5: providers.openai.credential.format: must contain {value}`},
		},
		{
			name: "bad credential header",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential:\n      header: \"x api key\"\n      env: OPENAI_API_KEY\n",
			want: []string{`line 5: providers.openai.credential.header: "x api key" is not a valid HTTP header name`},
		},
		{
			name: "model route to unknown provider",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    models:\n      \"claude-*\": anthropc\n",
			want: []string{`line 5: providers.openai.models["claude-*"]: unknown provider "anthropc"`},
		},
		{
			name: "bad glob",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    models:\n      \"claude-[\": openai\n",
			want: []string{`line 5: providers.openai.models["claude-["]: invalid glob pattern "claude-["`},
		},
		{
			name: "bad provider name",
			file: "providers:\n  OpenAI:\n    baseURL: https://api.openai.com\n",
			want: []string{`line 2: providers.OpenAI: provider name must match [a-z0-9-]+`},
		},
		{
			name: "duplicate provider",
			file: "providers:\n  openai:\n    baseURL: https://a\n  openai:\n    baseURL: https://b\n",
			want: []string{`line 4: providers.openai: duplicate key (first defined on line 2)`},
		},
		{
			name: "reserved extra header",
			file: "providers:\n  openai:\n    baseURL: https://api.openai.com\n    headers:\n      Host: evil\n",
			want: []string{`line 5: providers.openai.headers.Host: Host cannot be set by the gateway`},
		},
		{
			name: "no providers",
			file: "providers: {}\n",
			want: []string{`line 1: providers: no providers defined`},
		},
		{
			name: "providers is a list",
			file: "providers:\n  - openai\n",
			want: []string{`line 2: providers: must be a map, got a list`},
		},
		{
			name: "every error is reported",
			file: "providers:\n  a:\n    baseURL: nope\n  b:\n    baseURL: https://b\n    credential: {env: UNSET}\n",
			want: []string{
				`line 3: providers.a.baseURL: must be an absolute`,
				`line 6: providers.b.credential.env: environment variable UNSET is not set or empty`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := ParseProviders([]byte(tt.file), env)
			if err == nil {
				t.Fatalf("ParseProviders succeeded (%v), want error containing %q", ps.Names(), tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n%v\ndoes not contain\n%s", err, w)
				}
			}
		})
	}
}

func TestLoadProvidersNamesTheFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "providers.yaml")
	bad := strings.Replace(designExample, "env: OPENAI_API_KEY", "envv: OPENAI_API_KEY", 1)
	if err := os.WriteFile(file, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadProviders(file, testEnv)
	want := file + `: line 7: providers.openai.credential: unknown field "envv"`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("LoadProviders error = %v, want it to contain %q", err, want)
	}

	_, err = LoadProviders(filepath.Join(t.TempDir(), "missing.yaml"), testEnv)
	if err == nil || !strings.Contains(err.Error(), "reading providers file") {
		t.Fatalf("LoadProviders of a missing file: %v", err)
	}
}
