package providers

import (
	"path"
	"strconv"
)

// OutputLimit is the most output, in tokens, one answer of the models
// matching Pattern can be billed for (maxOutputTokens: in the providers
// file). Metering reserves up to this much per answer (issue 23): a
// request's max_tokens above it cannot make the reservation larger than
// what the provider may bill, and a request without max_tokens reserves
// it instead of a guess.
type OutputLimit struct {
	Pattern string
	Tokens  int64
}

// MaxOutputTokensLimit bounds a maxOutputTokens: value. Ten million is
// far past any model's output, and keeps a reservation (answers × output
// + input) well inside int64 and quota.MaxHits.
const MaxOutputTokensLimit = 10_000_000

// DefaultMaxOutputTokens is a model's maximum output when its provider's
// maxOutputTokens: does not name it: the largest any model of the kind
// offered when this was written (OpenAI's GPT-5 and o-series, up to
// 128,000; Anthropic's Claude with extended output, 128,000). A larger
// default only reserves more; a smaller one could let a request be billed
// for more than was reserved, so operators lower it per model, never the
// default.
var DefaultMaxOutputTokens = map[Kind]int64{
	KindOpenAI:    128_000,
	KindAnthropic: 128_000,
	KindCustom:    128_000,
}

// MaxOutputTokens is the most output one answer of model can be billed
// for on this provider: the first maxOutputTokens: pattern that matches,
// else the kind's default.
func (p *Provider) MaxOutputTokens(model string) int64 {
	for _, l := range p.OutputLimits {
		// Patterns were validated at load time, so the error is always nil.
		if ok, _ := path.Match(l.Pattern, model); ok && model != "" {
			return l.Tokens
		}
	}
	if n, ok := DefaultMaxOutputTokens[p.Kind]; ok {
		return n
	}
	return DefaultMaxOutputTokens[KindCustom]
}

// maxOutputTokens reads a provider's maxOutputTokens: map, model glob ->
// tokens.
func (v *validation) maxOutputTokens(prov *Provider, o *ordered[text], at string) {
	for _, e := range globEntries(v, o, at) {
		s, ok := v.str(&e.value, e.at)
		if !ok {
			continue
		}
		tokens, err := strconv.ParseInt(s, 10, 64)
		if err != nil || tokens < 1 || tokens > MaxOutputTokensLimit {
			v.errorf(e.value.node, e.at, "must be a whole number of tokens from 1 to %d (like 16384), got %q", MaxOutputTokensLimit, s)
			continue
		}
		prov.OutputLimits = append(prov.OutputLimits, OutputLimit{Pattern: e.key, Tokens: tokens})
	}
}
