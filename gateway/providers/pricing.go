package providers

import (
	"path"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// ModelPrice is what a provider charges for the models matching Pattern,
// in US dollars per million tokens, as the providers file's pricing: says.
// Dollar budgets are counted from it (docs/design.md, section 12.3).
type ModelPrice struct {
	Pattern string
	// Input and Output are per million tokens, in nano-dollars: decimal
	// prices are kept exactly (a price of 0.075 is 75,000,000).
	Input, Output gatewayv1alpha1.NanoUSD
}

// Cost is the price of a request, rounded up to the next nano-dollar so
// that many small requests never add up to less than they cost.
func (mp ModelPrice) Cost(inputTokens, outputTokens int64) gatewayv1alpha1.NanoUSD {
	return perMillion(inputTokens, mp.Input) + perMillion(outputTokens, mp.Output)
}

// maxPricedTokens bounds the token count a cost is computed for: with a
// price of at most maxPricePerMillion, the product stays within int64.
const (
	maxPricedTokens    = 1_000_000_000                              // a billion tokens in one request
	maxPricePerMillion = gatewayv1alpha1.NanoUSD(1_000_000_000_000) // $1,000 per million tokens
)

func perMillion(tokens int64, price gatewayv1alpha1.NanoUSD) gatewayv1alpha1.NanoUSD {
	if tokens <= 0 || price <= 0 {
		return 0
	}
	tokens = min(tokens, maxPricedTokens)
	return gatewayv1alpha1.NanoUSD((tokens*int64(price) + 999_999) / 1_000_000)
}

// Price returns the price of model on this provider: the first pricing:
// pattern that matches it, in file order.
func (p *Provider) Price(model string) (ModelPrice, bool) {
	if model == "" {
		return ModelPrice{}, false
	}
	for _, mp := range p.Pricing {
		// Patterns were validated at load time, so the error is always nil.
		if ok, _ := path.Match(mp.Pattern, model); ok {
			return mp, true
		}
	}
	return ModelPrice{}, false
}

// pricing reads a provider's pricing: map, model glob -> {input, output}.
func (v *validation) pricing(prov *Provider, o *ordered[priceDoc], at string) {
	for _, e := range globEntries(v, o, at) {
		ep := e.at
		if !v.object(&e.value.written, ep) {
			continue
		}
		mp := ModelPrice{Pattern: e.key}
		for _, field := range []struct {
			name  string
			value *text
			dst   *gatewayv1alpha1.NanoUSD
		}{{"input", e.value.Input, &mp.Input}, {"output", e.value.Output, &mp.Output}} {
			if field.value == nil {
				v.errorf(e.value.node, ep, "missing required field %q (US dollars per million tokens)", field.name)
				continue
			}
			s, ok := v.str(field.value, ep+"."+field.name)
			if !ok {
				continue
			}
			price, err := gatewayv1alpha1.ParseUSD(s)
			if err != nil || price > maxPricePerMillion {
				v.errorf(field.value.node, ep+"."+field.name, "must be US dollars per million tokens, from 0 to 1000 (like 2.50), got %q", s)
				continue
			}
			*field.dst = price
		}
		prov.Pricing = append(prov.Pricing, mp)
	}
}
