package devmode

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/codevector/codevector/gateway/providers"
)

// StandInModels are the models the stand-in providers list, by provider:
// the models the docs, the CLI's help, the README and the console's hints
// name (gpt-4o*, gpt-4.1*, claude-sonnet-*, claude-haiku-*), each with a
// price and a maximum output in devProvidersFile, so that a key limited
// to them, or with a dollar budget, works in dev mode as it would in
// production.
var StandInModels = map[string][]string{
	"openai":    {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small"},
	"anthropic": {"claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"},
}

// openaiPricing and anthropicPricing are the pricing: and maxOutputTokens:
// of dev mode's providers, stand-in or real: list prices in US dollars per
// million tokens and the models' documented maximum output when this was
// written. More specific globs first: the first match wins.
const (
	openaiPricing = `    pricing:
      "gpt-4o-mini*": {input: 0.15, output: 0.60}
      "gpt-4o*": {input: 2.50, output: 10}
      "gpt-4.1-mini*": {input: 0.40, output: 1.60}
      "gpt-4.1*": {input: 2, output: 8}
      "text-embedding-3-small*": {input: 0.02, output: 0}
    maxOutputTokens:
      "gpt-4o*": 16384
      "gpt-4.1*": 32768
`
	anthropicPricing = `    pricing:
      "claude-opus-*": {input: 15, output: 75}
      "claude-sonnet-*": {input: 3, output: 15}
      "claude-haiku-*": {input: 1, output: 5}
    maxOutputTokens:
      "claude-opus-*": 32000
      "claude-sonnet-*": 64000
      "claude-haiku-*": 64000
`
)

// devProviders is the providers configuration of dev mode: openai and
// anthropic, with claude-* models sent to the openai route going to
// anthropic (as the docs' example does). OPENAI_API_KEY makes openai
// api.openai.com, ANTHROPIC_API_KEY makes anthropic api.anthropic.com;
// each provider without its credential is an echo stand-in (EchoUpstream)
// served here on a loopback port, so every example of the docs works with
// no credentials. notes are the lines start-up prints about it.
func devProviders(getenv func(string) string) (p *providers.Providers, notes []string, stop func(), err error) {
	var servers []*http.Server
	stop = func() {
		for _, s := range servers {
			_ = s.Close()
		}
	}
	standIn := func(kind string) (string, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", fmt.Errorf("starting the %s stand-in: %w", kind, err)
		}
		srv := &http.Server{
			Handler:           &EchoUpstream{ChunkDelay: 20 * time.Millisecond, Kind: kind, Models: StandInModels[kind]},
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() { _ = srv.Serve(ln) }()
		servers = append(servers, srv)
		return "http://" + ln.Addr().String(), nil
	}

	var b strings.Builder
	b.WriteString("providers:\n  openai:\n")
	if strings.TrimSpace(getenv("OPENAI_API_KEY")) != "" {
		b.WriteString("    baseURL: https://api.openai.com\n    credential: {env: OPENAI_API_KEY}\n")
		notes = append(notes, "openai     https://api.openai.com (OPENAI_API_KEY)")
	} else {
		url, err := standIn("openai")
		if err != nil {
			return nil, nil, func() {}, err
		}
		fmt.Fprintf(&b, "    baseURL: %s\n", url)
		notes = append(notes, fmt.Sprintf("openai     DEV STAND-IN at %s: answers \"Echo: <your last message>\" in OpenAI's shapes (streaming too; models %s). Not a model. Set OPENAI_API_KEY for api.openai.com.",
			url, strings.Join(StandInModels["openai"], ", ")))
	}
	b.WriteString("    models:\n      \"claude-*\": anthropic\n")
	b.WriteString(openaiPricing)
	b.WriteString("  anthropic:\n")
	if strings.TrimSpace(getenv("ANTHROPIC_API_KEY")) != "" {
		b.WriteString("    baseURL: https://api.anthropic.com\n")
		b.WriteString("    credential: {header: x-api-key, format: \"{value}\", env: ANTHROPIC_API_KEY}\n")
		b.WriteString("    headers: {anthropic-version: \"2023-06-01\"}\n")
		notes = append(notes, "anthropic  https://api.anthropic.com (ANTHROPIC_API_KEY); claude-* models on the openai route go there too")
	} else {
		url, err := standIn("anthropic")
		if err != nil {
			stop()
			return nil, nil, func() {}, err
		}
		fmt.Fprintf(&b, "    kind: anthropic\n    baseURL: %s\n", url)
		notes = append(notes, fmt.Sprintf("anthropic  DEV STAND-IN at %s: answers \"Echo: <your last message>\" in Anthropic's shapes (streaming too; models %s); claude-* models on the openai route go there too. Not a model. Set ANTHROPIC_API_KEY for api.anthropic.com.",
			url, strings.Join(StandInModels["anthropic"], ", ")))
	}
	b.WriteString(anthropicPricing)
	if p, err = providers.ParseProviders([]byte(b.String()), getenv); err != nil {
		stop()
		return nil, nil, func() {}, fmt.Errorf("dev providers: %w", err)
	}
	return p, notes, stop, nil
}
