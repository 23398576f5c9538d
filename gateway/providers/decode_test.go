package providers

import (
	"strings"
	"testing"
)

// TestParseProvidersDecodeEdges covers what the typed decode has to undo
// of yaml.v3's defaults to keep the file's contract: nulls (which yaml.v3
// hands to no UnmarshalYAML), merge keys (which it merges silently),
// duplicate keys (after which it decodes nothing of the map), keys that
// are not strings, and an empty key.
func TestParseProvidersDecodeEdges(t *testing.T) {
	env := envMap(map[string]string{"OPENAI_API_KEY": "sk"})
	const head = "providers:\n  openai:\n    baseURL: https://api.openai.com\n"
	tests := []struct {
		name string
		file string
		want []string // lines of the error, all required
		not  []string // substrings it must not have
	}{
		{
			name: "null document",
			file: "# nothing but a null\n~\n",
			want: []string{`line 2: (top level): must be a map, got null`},
		},
		{
			name: "null providers",
			file: "providers: ~\n",
			want: []string{`line 1: providers: must be a map, got null`},
		},
		{
			name: "null provider",
			file: "providers:\n  openai: ~\n",
			want: []string{`line 2: providers.openai: must be a map, got null`},
		},
		{
			name: "null env keeps its line",
			file: head + "    credential:\n      env: ~\n",
			want: []string{`line 5: providers.openai.credential.env: must be a non-empty string, got null`},
			not:  []string{`set one of "env" or "file"`},
		},
		{
			name: "null kind is not the default kind",
			file: head + "    kind: ~\n",
			want: []string{`line 4: providers.openai.kind: must be a non-empty string, got null`},
		},
		{
			name: "null price",
			file: head + "    pricing:\n      \"gpt-*\": {input: 1, output: ~}\n",
			want: []string{`line 5: providers.openai.pricing["gpt-*"].output: must be a non-empty string, got null`},
		},
		{
			name: "null header value",
			file: head + "    headers:\n      x-team: ~\n",
			want: []string{`line 5: providers.openai.headers.x-team: must be a non-empty string, got null`},
		},
		{
			name: "null route",
			file: head + "    routes:\n      - ~\n",
			want: []string{`line 5: providers.openai.routes[0]: must be a non-empty string, got null`},
		},
		{
			name: "null optional parts are left out",
			file: head + "    credential: ~\n    headers: ~\n    models: ~\n    routes: ~\n    pricing: ~\n    maxOutputTokens: ~\n    kind: custom\n",
			// Accepted as far as they go: only the custom kind's lack of
			// routes is wrong.
			want: []string{`line 3: providers.openai: kind custom has no built-in routes`},
		},
		{
			name: "merge key is not merged",
			file: "defaults: &d {baseURL: https://api.openai.com}\nproviders:\n  openai:\n    <<: *d\n",
			want: []string{
				`line 1: (top level): unknown field "defaults" (known fields: providers)`,
				`line 4: providers.openai: unknown field "<<" (known fields: kind, baseURL, credential, headers, models, routes, pricing, maxOutputTokens)`,
				`line 4: providers.openai: missing required field "baseURL"`,
			},
		},
		{
			name: "a duplicate key hides none of its map's other problems",
			file: head + "    baseURL: https://b\n    credential: {env: UNSET}\n    envv: x\n",
			want: []string{
				`line 4: providers.openai.baseURL: duplicate key (first defined on line 3)`,
				`line 5: providers.openai.credential.env: environment variable UNSET is not set or empty`,
				`line 6: providers.openai: unknown field "envv"`,
			},
		},
		{
			name: "each repeat of a key once",
			file: head + "    models: {\"a*\": openai, \"a*\": openai, \"a*\": openai}\n",
			want: []string{
				`line 4: providers.openai.models["a*"]: duplicate key (first defined on line 4)`,
			},
		},
		{
			name: "keys that are not strings",
			file: head + "    headers: {[x]: y}\n    ~: 1\n",
			want: []string{
				`line 4: providers.openai.headers: keys must be strings, got a list`,
				`line 5: providers.openai: keys must be strings, got null`,
			},
			not: []string{"cannot unmarshal"},
		},
		{
			name: "empty key",
			file: head + "    credential: {\"\"}\n",
			want: []string{
				`line 4: providers.openai.credential: unknown field "" (known fields: header, format, env, file)`,
				`line 4: providers.openai.credential: set one of "env" or "file"`,
			},
		},
		{
			name: "unknown fields in a flow map",
			file: head + "    pricing: {\"gpt-*\": {input: 1, cached: 0.5, output: 2, batch: 1}}\n",
			want: []string{
				`line 4: providers.openai.pricing["gpt-*"]: unknown field "cached" (known fields: input, output)`,
				`line 4: providers.openai.pricing["gpt-*"]: unknown field "batch" (known fields: input, output)`,
			},
		},
		{
			name: "an unknown key written as an alias",
			file: "x: &k envv\nproviders:\n  openai:\n    baseURL: https://api.openai.com\n    *k : 1\n",
			want: []string{
				`line 1: (top level): unknown field "x" (known fields: providers)`,
				`line 1: providers.openai: unknown field "envv" (known fields: kind, baseURL, credential, headers, models, routes, pricing, maxOutputTokens)`,
			},
			not: []string{"not found in type"},
		},
		{
			name: "unknown fields under an alias are reported where it is used",
			file: "providers:\n  a: &a\n    baseURL: https://a\n    envv: x\n  b: *a\n",
			want: []string{
				`line 4: providers.a: unknown field "envv"`,
				`line 4: providers.b: unknown field "envv"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := ParseProviders([]byte(tt.file), env)
			if err == nil {
				t.Fatalf("ParseProviders succeeded (%v), want an error with %q", ps.Names(), tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			for _, w := range tt.want {
				found := false
				for _, l := range lines {
					found = found || strings.HasPrefix(l, w)
				}
				if !found {
					t.Errorf("error\n%v\nhas no line starting\n%s", err, w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(err.Error(), n) {
					t.Errorf("error\n%v\ncontains %q", err, n)
				}
			}
		})
	}
}

// TestParseProvidersErrorsInFileOrder: problems come out in the order of
// the file, one per line of the message, whichever level found them.
func TestParseProvidersErrorsInFileOrder(t *testing.T) {
	_, err := ParseProviders([]byte(`providers:
  a:
    baseURL: nope
    kind: gemini
  b:
    envv: x
    baseURL: https://b
    baseURL: https://c
    "two\nlines": x
    models: {"x*": c}
`), nil)
	want := `line 3: providers.a.baseURL: must be an absolute http or https URL with a host, got "nope"
line 4: providers.a.kind: must be openai, anthropic or custom, got "gemini"
line 6: providers.b: unknown field "envv" (known fields: kind, baseURL, credential, headers, models, routes, pricing, maxOutputTokens)
line 8: providers.b.baseURL: duplicate key (first defined on line 7)
line 9: providers.b: unknown field "two\nlines" (known fields: kind, baseURL, credential, headers, models, routes, pricing, maxOutputTokens)
line 10: providers.b.models["x*"]: unknown provider "c"`
	if err == nil || err.Error() != want {
		t.Fatalf("error =\n%v\nwant\n%s", err, want)
	}
}
