package providers

import (
	"strings"
	"testing"
)

func TestPricing(t *testing.T) {
	ps, err := ParseProviders([]byte(`providers:
  openai:
    baseURL: https://api.openai.com
    credential: {env: OPENAI_API_KEY}
    pricing:
      "gpt-4o-mini*": {input: 0.15, output: 0.60}
      "gpt-4o*": {input: 2.50, output: 10}
      "text-embedding-3-small": {input: 0.02, output: 0}
`), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	openai := ps.Get("openai")
	for _, tc := range []struct {
		model   string
		in, out int64
		want    string // dollars
	}{
		{"gpt-4o-mini-2024-07-18", 1_000_000, 1_000_000, "0.75"}, // first match wins over gpt-4o*
		{"gpt-4o", 1_000, 500, "0.0075"},
		{"gpt-4o", 1, 0, "0.0000025"},
		{"text-embedding-3-small", 3, 0, "0.00000006"},
		{"text-embedding-3-small", 1, 0, "0.00000002"},
	} {
		price, ok := openai.Price(tc.model)
		if !ok {
			t.Errorf("%s: no price", tc.model)
			continue
		}
		if got := price.Cost(tc.in, tc.out).String(); got != tc.want {
			t.Errorf("%s, %d in, %d out: $%s, want $%s", tc.model, tc.in, tc.out, got, tc.want)
		}
	}
	if _, ok := openai.Price("o3-pro"); ok {
		t.Error("a model without a price has one")
	}
	// A fraction of a nano-dollar rounds up: a million one-token requests
	// never cost less than one million-token request.
	cheap := ModelPrice{Input: 1} // $0.000000001 per million tokens
	if got := cheap.Cost(1, 0); got != 1 {
		t.Errorf("a sub-nano-dollar cost rounds to %d, want 1", got)
	}
}

func TestPricingErrors(t *testing.T) {
	for _, tc := range []struct{ pricing, want string }{
		{`{"gpt-[": {input: 1, output: 1}}`, `line 5: providers.openai.pricing["gpt-["]: invalid glob pattern`},
		{`{"gpt-4o": {input: 1}}`, `missing required field "output"`},
		{`{"gpt-4o": {input: -1, output: 1}}`, `providers.openai.pricing.gpt-4o.input: must be US dollars per million tokens, from 0 to 1000 (like 2.50), got "-1"`},
		{`{"gpt-4o": {input: 1e3, output: 1}}`, `got "1e3"`},
		{`{"gpt-4o": {input: 1001, output: 1}}`, `got "1001"`},
		{`{"gpt-4o": {input: 1, output: 1, cached: 0.5}}`, `unknown field "cached"`},
	} {
		_, err := ParseProviders([]byte("providers:\n  openai:\n    baseURL: https://api.openai.com\n    credential: {env: OPENAI_API_KEY}\n    pricing: "+tc.pricing+"\n"), testEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("pricing %s: got %v, want an error containing %q", tc.pricing, err, tc.want)
		}
	}
}
