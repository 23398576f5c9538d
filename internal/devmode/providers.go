package devmode

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/codevector/codevector/gateway/proxy"
)

// devProviders is the providers configuration of dev mode. With
// OPENAI_API_KEY set, openai is api.openai.com; without it, openai is the
// built-in echo stand-in, served here on a loopback port. With
// ANTHROPIC_API_KEY set, anthropic is api.anthropic.com and claude-*
// models sent to the openai route go there (as the docs' example does).
// notes are the lines start-up prints about it.
func devProviders(getenv func(string) string) (p *proxy.Providers, notes []string, stop func(), err error) {
	stop = func() {}
	openaiKey := strings.TrimSpace(getenv("OPENAI_API_KEY")) != ""
	anthropicKey := strings.TrimSpace(getenv("ANTHROPIC_API_KEY")) != ""

	var b strings.Builder
	b.WriteString("providers:\n  openai:\n")
	if openaiKey {
		b.WriteString("    baseURL: https://api.openai.com\n    credential: {env: OPENAI_API_KEY}\n")
		notes = append(notes, "openai     https://api.openai.com (OPENAI_API_KEY)")
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, stop, fmt.Errorf("starting the echo stand-in: %w", err)
		}
		srv := &http.Server{Handler: &EchoUpstream{ChunkDelay: 20 * time.Millisecond}, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		stop = func() { _ = srv.Close() }
		fmt.Fprintf(&b, "    baseURL: http://%s\n", ln.Addr())
		notes = append(notes, fmt.Sprintf("openai     DEV STAND-IN: the built-in echo upstream at http://%s answers \"Echo: <your last message>\" (streaming too). Not a model. Set OPENAI_API_KEY for api.openai.com.", ln.Addr()))
	}
	if anthropicKey {
		b.WriteString("    models:\n      \"claude-*\": anthropic\n")
		b.WriteString("  anthropic:\n    baseURL: https://api.anthropic.com\n")
		b.WriteString("    credential: {header: x-api-key, format: \"{value}\", env: ANTHROPIC_API_KEY}\n")
		b.WriteString("    headers: {anthropic-version: \"2023-06-01\"}\n")
		notes = append(notes, "anthropic  https://api.anthropic.com (ANTHROPIC_API_KEY); claude-* models on the openai route go there too")
	}
	if p, err = proxy.ParseProviders([]byte(b.String()), getenv); err != nil {
		stop()
		return nil, nil, func() {}, fmt.Errorf("dev providers: %w", err)
	}
	return p, notes, stop, nil
}
