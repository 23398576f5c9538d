package devmode

import (
	_ "embed"
	"fmt"
	"net"
	"net/http"
	"strings"
	"text/template"
	"time"

	"github.com/codevector/codevector/gateway/providers"
)

// StandInModels are the models the stand-in providers list, by provider:
// the models the docs, the CLI's help, the README and the console's hints
// name (gpt-4o*, gpt-4.1*, claude-sonnet-*, claude-haiku-*), each with a
// price and a maximum output in providers.yaml, so that a key limited
// to them, or with a dollar budget, works in dev mode as it would in
// production.
var StandInModels = map[string][]string{
	"openai":    {"gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "text-embedding-3-small"},
	"anthropic": {"claude-sonnet-4-6", "claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-1"},
}

// providersFile is dev mode's providers file, a template filled in with
// devProvider for each provider: the real API when its credential is in
// the environment, else a stand-in's loopback URL. It is a file of its own
// so that it reads as the providers file a cluster would have.
//
//go:embed providers.yaml
var providersFile string

var providersTemplate = template.Must(template.New("providers.yaml").Option("missingkey=error").Parse(providersFile))

// devProvider is one provider of dev mode as providers.yaml reads it.
type devProvider struct {
	// Real: its credential is in the environment (env), so it goes to
	// realURL.
	Real bool
	// StandIn is the stand-in's base URL when not Real.
	StandIn string
}

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
	// provider decides where one provider goes and says so in notes.
	provider := func(kind, shapes, env, realURL, also string) (devProvider, error) {
		if strings.TrimSpace(getenv(env)) != "" {
			notes = append(notes, fmt.Sprintf("%-10s %s (%s)%s", kind, realURL, env, also))
			return devProvider{Real: true}, nil
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return devProvider{}, fmt.Errorf("starting the %s stand-in: %w", kind, err)
		}
		srv := &http.Server{
			Handler:           &EchoUpstream{ChunkDelay: 20 * time.Millisecond, Kind: kind, Models: StandInModels[kind]},
			ReadHeaderTimeout: 10 * time.Second,
		}
		go func() { _ = srv.Serve(ln) }()
		servers = append(servers, srv)
		url := "http://" + ln.Addr().String()
		notes = append(notes, fmt.Sprintf("%-10s DEV STAND-IN at %s: answers \"Echo: <your last message>\" in %s's shapes (streaming too; models %s)%s. Not a model. Set %s for %s.",
			kind, url, shapes, strings.Join(StandInModels[kind], ", "), also, env, strings.TrimPrefix(realURL, "https://")))
		return devProvider{StandIn: url}, nil
	}
	var file struct{ OpenAI, Anthropic devProvider }
	if file.OpenAI, err = provider("openai", "OpenAI", "OPENAI_API_KEY", "https://api.openai.com", ""); err == nil {
		file.Anthropic, err = provider("anthropic", "Anthropic", "ANTHROPIC_API_KEY", "https://api.anthropic.com", "; claude-* models on the openai route go there too")
	}
	var b strings.Builder
	if err == nil {
		err = providersTemplate.Execute(&b, file)
	}
	if err == nil {
		p, err = providers.ParseProviders([]byte(b.String()), getenv)
	}
	if err != nil {
		stop()
		return nil, nil, func() {}, fmt.Errorf("dev providers: %w", err)
	}
	return p, notes, stop, nil
}
