package providers

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzDecodeRevalidates: the decoder never panics, and whatever Validate
// accepts re-validates to the same providers, twice over: Validate run
// again on the same decoded file (it reads the decode, never changes it),
// and the accepted providers written back out as a providers file and
// parsed again (nothing is lost or reordered between the file and the
// types: the provider order, first-match-wins orders, kinds, routes,
// credentials, headers, prices and output limits all come back).
func FuzzDecodeRevalidates(f *testing.F) {
	for _, seed := range []string{
		designExample,
		"providers:\n  a:\n    kind: custom\n    baseURL: http://h/v1/\n    routes: [GET /v1/files/*, \"* /v1/x/**\", GET /api]\n",
		"providers:\n  a: &x\n    baseURL: http://h\n    headers: {x-v: 2023-06-01, x-n: 3}\n  b: *x\n",
		"providers:\n  b:\n    baseURL: http://h\n    models: {\"b-*\": a, \"*\": b}\n    pricing: {\"g-mini*\": {input: 0.15, output: 0.6}, \"g*\": {input: 2.5, output: 10}}\n    maxOutputTokens: {\"g-mini*\": 16384, \"*\": 4096}\n  a:\n    baseURL: https://a/x\n    kind: anthropic\n    routes: [POST /x/**]\n",
		"providers:\n  a:\n    baseURL: http://h\n    credential: {\"\"}\n",
		"providers:\n  a:\n    <<: {baseURL: http://h}\n    credential: {env: ~}\n",
		"providers:\n  a:\n    baseURL: http://h\n    baseURL: http://i\n    ~: 1\n    [x]: 2\n",
		"~",
		"",
	} {
		f.Add([]byte(seed))
	}
	const secret = "sk-fuzz-secret-value"
	getenv := func(string) string { return secret }
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := decodeFile(data)
		if err != nil {
			return // a syntax error; FuzzParseProviders checks its wording
		}
		ps, err := doc.Validate("", getenv)
		if err != nil {
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("error reveals the credential: %v", err)
			}
			return
		}
		want := describeProviders(ps)
		again, err := doc.Validate("", getenv)
		if err != nil {
			t.Fatalf("accepted once, refused on a second Validate: %v", err)
		}
		if got := describeProviders(again); got != want {
			t.Fatalf("a second Validate gave\n%s\nthe first\n%s", got, want)
		}
		out := writeProviders(t, ps)
		reread, err := ParseProviders(out, getenv)
		if err != nil {
			t.Fatalf("accepted, written back as\n%s\nand refused: %v", out, err)
		}
		if got := describeProviders(reread); got != want {
			t.Fatalf("written back as\n%s\nand read as\n%s\nnot as\n%s", out, got, want)
		}
	})
}

// describeProviders is everything Validate builds, in order, as text.
func describeProviders(ps *Providers) string {
	var b strings.Builder
	for _, p := range ps.List() {
		fmt.Fprintf(&b, "%s %s kind=%s\n", p.Name, p.BaseURL, p.Kind)
		if c := p.Credential; c != nil {
			v, _ := c.HeaderValues()
			fmt.Fprintf(&b, "  credential %s %q env=%q file=%q value=%q\n", c.Header, c.Format, c.Env, c.File, v)
		}
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range p.Headers {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range keys {
			fmt.Fprintf(&b, "  header %s=%q\n", k, p.Headers[k])
		}
		for _, m := range p.Models {
			fmt.Fprintf(&b, "  model %q -> %s\n", m.Pattern, m.Provider)
		}
		for _, rt := range p.Routes {
			fmt.Fprintf(&b, "  route %s rel=%q\n", rt, rt.rel)
		}
		for _, mp := range p.Pricing {
			fmt.Fprintf(&b, "  price %q %d %d\n", mp.Pattern, mp.Input, mp.Output)
		}
		for _, l := range p.OutputLimits {
			fmt.Fprintf(&b, "  output %q %d\n", l.Pattern, l.Tokens)
		}
	}
	return b.String()
}

// writeProviders writes accepted providers back out as a providers file:
// every field explicit, routes: only the file's (the kind brings the
// built-ins back).
func writeProviders(t *testing.T, ps *Providers) []byte {
	str := func(s string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s} }
	mapping := func(kv ...*yaml.Node) *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode, Content: kv} }
	list := mapping()
	for _, p := range ps.List() {
		prov := mapping(str("kind"), str(string(p.Kind)), str("baseURL"), str(p.BaseURL.String()))
		if c := p.Credential; c != nil {
			cred := mapping(str("header"), str(c.Header), str("format"), str(c.Format))
			if c.File != "" {
				cred.Content = append(cred.Content, str("file"), str(c.File))
			} else {
				cred.Content = append(cred.Content, str("env"), str(c.Env))
			}
			prov.Content = append(prov.Content, str("credential"), cred)
		}
		if p.Headers != nil {
			headers := mapping()
			for k, v := range p.Headers {
				headers.Content = append(headers.Content, str(k), str(v[0]))
			}
			prov.Content = append(prov.Content, str("headers"), headers)
		}
		if len(p.Models) > 0 {
			models := mapping()
			for _, m := range p.Models {
				models.Content = append(models.Content, str(m.Pattern), str(m.Provider))
			}
			prov.Content = append(prov.Content, str("models"), models)
		}
		builtins := 0
		for _, rt := range builtinRoutes[p.Kind] {
			if _, ok := relativeTo(rt.segs, baseSegments(p.BaseURL)); ok {
				builtins++
			}
		}
		if own := p.Routes[builtins:]; len(own) > 0 {
			routes := &yaml.Node{Kind: yaml.SequenceNode}
			for _, rt := range own {
				routes.Content = append(routes.Content, str(rt.String()))
			}
			prov.Content = append(prov.Content, str("routes"), routes)
		}
		if len(p.Pricing) > 0 {
			pricing := mapping()
			for _, mp := range p.Pricing {
				pricing.Content = append(pricing.Content, str(mp.Pattern),
					mapping(str("input"), str(mp.Input.String()), str("output"), str(mp.Output.String())))
			}
			prov.Content = append(prov.Content, str("pricing"), pricing)
		}
		if len(p.OutputLimits) > 0 {
			limits := mapping()
			for _, l := range p.OutputLimits {
				limits.Content = append(limits.Content, str(l.Pattern), str(fmt.Sprint(l.Tokens)))
			}
			prov.Content = append(prov.Content, str("maxOutputTokens"), limits)
		}
		list.Content = append(list.Content, str(p.Name), prov)
	}
	out, err := yaml.Marshal(mapping(str("providers"), list))
	if err != nil {
		t.Fatalf("writing providers back out: %v", err)
	}
	return out
}
