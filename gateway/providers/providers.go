// Package providers is the gateway's providers file (docs/design.md,
// section 7.2): the upstreams it may forward to, their credentials, API
// kinds and routes, model routes, prices and maximum output, decoded
// (schema.go, decode.go) and validated (validate.go) at start with every
// error naming its line and field path, and the messages that answer
// requests reaching no provider (hints.go). It imports none of the request path's rooms: the
// proxy forwards to what it describes, metering and policy read its
// prices and bounds.
package providers

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
)

// Providers is the parsed providers file (docs/design.md, section 7.2): the
// upstreams the gateway may forward to, keyed by the name used in
// /gateway/{provider}/... URLs.
type Providers struct {
	list   []*Provider
	byName map[string]*Provider
}

// List returns the providers in the order of the file.
func (ps *Providers) List() []*Provider { return ps.list }

// Get returns the provider with this name, or nil.
func (ps *Providers) Get(name string) *Provider { return ps.byName[name] }

// Names returns the provider names in the order of the file.
func (ps *Providers) Names() []string {
	names := make([]string, len(ps.list))
	for i, p := range ps.list {
		names[i] = p.Name
	}
	return names
}

// Provider is one upstream.
type Provider struct {
	// Name is the key under providers:, the {provider} of the URL.
	Name string
	// BaseURL is where requests go; the rest of the gateway path is appended
	// to its path.
	BaseURL *url.URL
	// Credential is how the gateway authenticates to the upstream; nil for an
	// upstream that needs none (a local model server).
	Credential *Credential
	// Headers are set on every upstream request, replacing a value the client
	// sent for the same header (so OpenAI-Project and the like cannot be
	// overridden by a client). Keys are canonical.
	Headers http.Header
	// Models routes by the request's "model" to another provider, in file
	// order: the first matching glob wins.
	Models []ModelRoute
	// Kind is the API the provider speaks (kind:, else defaultKind); it
	// brings the built-in inference routes.
	Kind Kind
	// Routes are what clients may call, checked against the URL's
	// provider: the kind's built-in routes, then the file's routes:.
	// Anything else is refused before it reaches the provider.
	Routes []Route
	// Pricing prices models for dollar budgets (pricing:), first match
	// wins. A model it does not price is refused for keys with a dollar
	// budget, never counted as free.
	Pricing []ModelPrice
	// OutputLimits are the models' maximum output per answer
	// (maxOutputTokens:), first match wins; models they do not name get
	// their kind's default (DefaultMaxOutputTokens). Metering reserves up
	// to this much output per answer.
	OutputLimits []OutputLimit
}

// ModelRoute sends requests whose "model" matches Pattern (path.Match syntax:
// '*' does not match '/') to the provider named Provider, same path.
type ModelRoute struct {
	Pattern  string
	Provider string
}

// Route returns the provider name the first matching route names, or "".
// Routing is one hop: the target's own routes are not consulted.
func (p *Provider) Route(model string) string {
	if model == "" {
		return ""
	}
	for _, r := range p.Models {
		// Patterns were validated at load time, so the error is always nil.
		if ok, _ := path.Match(r.Pattern, model); ok {
			return r.Provider
		}
	}
	return ""
}

// LoadProviders reads and validates the providers file at path. Errors name
// the file, the line and the field, one error per line:
//
//	providers.yaml: line 7: providers.openai.credential: unknown field "envv"
//
// getenv resolves credential env vars; nil means os.Getenv.
func LoadProviders(path string, getenv func(string) string) (*Providers, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading providers file: %w", err)
	}
	return parseProviders(path, data, getenv)
}

// ParseProviders parses and validates a providers file held in memory. It is
// LoadProviders without the file name in error messages. Credential files
// are read now (relative paths are relative to the working directory).
func ParseProviders(data []byte, getenv func(string) string) (*Providers, error) {
	return parseProviders("", data, getenv)
}

// ConfigError is one problem in a providers file.
type ConfigError struct {
	// Source is the file name, empty for ParseProviders.
	Source string
	// Line is 1-based; 0 when the problem has no line (an empty file).
	Line int
	// Field is the path of the offending field, e.g.
	// providers.openai.credential.env.
	Field string
	// Msg says what is wrong.
	Msg string
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	if e.Source != "" {
		b.WriteString(e.Source)
		b.WriteString(": ")
	}
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func parseProviders(source string, data []byte, getenv func(string) string) (*Providers, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	doc, err := decodeFile(data)
	if err != nil {
		if source != "" {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		return nil, err
	}
	return doc.Validate(source, getenv)
}
