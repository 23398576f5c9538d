// Package providers is the gateway's providers file (docs/design.md,
// section 7.2): the upstreams it may forward to, their credentials, API
// kinds and routes, model routes, prices and maximum output, read and
// validated at start with every error naming its line and field path
// (yamlwalk.go), and the messages that answer requests reaching no
// provider (hints.go). It imports none of the request path's rooms: the
// proxy forwards to what it describes, metering and policy read its
// prices and bounds.
package providers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
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

// parser walks the YAML node tree by hand instead of unmarshalling into
// structs: that is what lets every error carry both the line and the field
// path, and it makes unknown and duplicate keys errors.
type parser struct {
	source string
	getenv func(string) string
	errs   []error
	// routeNodes holds, per provider, the value node of each models entry
	// (aligned with Provider.Models) so a route to an unknown provider can
	// be reported on its line once all providers are known.
	routeNodes map[string][]*yaml.Node
}

func parseProviders(source string, data []byte, getenv func(string) string) (*Providers, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	p := &parser{source: source, getenv: getenv, routeNodes: map[string][]*yaml.Node{}}

	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		msg := syntaxError(err)
		if source != "" {
			msg = source + ": " + msg
		}
		return nil, errors.New(msg)
	}
	if len(doc.Content) == 0 {
		p.errorf(nil, "", `file is empty: expected a top-level "providers" map`)
		return nil, p.err()
	}

	top := p.object(doc.Content[0], "", "providers")
	provNode, ok := top["providers"]
	if !ok {
		if len(p.errs) == 0 {
			p.errorf(doc.Content[0], "", `missing required field "providers"`)
		}
		return nil, p.err()
	}

	ps := &Providers{byName: map[string]*Provider{}}
	entries := p.entries(provNode.value, "providers")
	if entries != nil && len(entries) == 0 {
		p.errorf(provNode.value, "providers", "no providers defined")
	}
	for _, e := range entries {
		fieldPath := "providers." + e.key
		if !validProviderName(e.key) {
			p.errorf(e.keyNode, fieldPath, "provider name must match [a-z0-9-]+")
			continue
		}
		prov := p.provider(e.key, e.value, fieldPath)
		ps.list = append(ps.list, prov)
		ps.byName[prov.Name] = prov
	}

	// Routes are checked once every provider is known, so a route may name a
	// provider defined further down the file.
	for _, e := range entries {
		prov := ps.byName[e.key]
		if prov == nil {
			continue
		}
		for i, r := range prov.Models {
			if _, ok := ps.byName[r.Provider]; !ok {
				p.errorf(p.routeNodes[prov.Name][i], fieldPath("providers."+e.key+".models", r.Pattern),
					"unknown provider %q", r.Provider)
			}
		}
	}

	if err := p.err(); err != nil {
		return nil, err
	}
	return ps, nil
}

func (p *parser) provider(name string, n *yaml.Node, at string) *Provider {
	prov := &Provider{Name: name}
	fields := p.object(n, at, "kind", "baseURL", "credential", "headers", "models", "routes", "pricing", "maxOutputTokens")
	if fields == nil {
		return prov
	}

	if f, ok := fields["baseURL"]; !ok || isNull(f.value) {
		p.errorf(n, at, `missing required field "baseURL"`)
	} else if s, ok := p.str(f.value, at+".baseURL"); ok {
		u, err := parseBaseURL(s)
		if err != nil {
			p.errorf(f.value, at+".baseURL", "%v", err)
		}
		prov.BaseURL = u
	}

	if f, ok := fields["credential"]; ok && !isNull(f.value) {
		prov.Credential = p.credential(f.value, at+".credential")
	}

	if f, ok := fields["headers"]; ok && !isNull(f.value) {
		prov.Headers = http.Header{}
		for _, h := range p.entries(f.value, at+".headers") {
			hp := fieldPath(at+".headers", h.key)
			if !httpguts.ValidHeaderFieldName(h.key) {
				p.errorf(h.keyNode, hp, "not a valid HTTP header name")
				continue
			}
			canon := http.CanonicalHeaderKey(h.key)
			if reservedHeaders[canon] {
				p.errorf(h.keyNode, hp, "%s cannot be set by the gateway", canon)
				continue
			}
			if c := prov.Credential; c != nil && c.Header == canon {
				p.errorf(h.keyNode, hp, "conflicts with credential.header")
				continue
			}
			v, ok := p.str(h.value, hp)
			if !ok {
				continue
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				p.errorf(h.value, hp, "value contains control characters")
				continue
			}
			prov.Headers[canon] = []string{v}
		}
	}

	if f, ok := fields["models"]; ok && !isNull(f.value) {
		for _, m := range p.globEntries(f.value, at+".models") {
			target, ok := p.str(m.value, m.at)
			if !ok {
				continue
			}
			prov.Models = append(prov.Models, ModelRoute{Pattern: m.key, Provider: target})
			p.routeNodes[name] = append(p.routeNodes[name], m.value)
		}
	}

	if f, ok := fields["pricing"]; ok && !isNull(f.value) {
		p.pricing(prov, f.value, at+".pricing")
	}
	if f, ok := fields["maxOutputTokens"]; ok && !isNull(f.value) {
		p.maxOutputTokens(prov, f.value, at+".maxOutputTokens")
	}

	p.kindAndRoutes(prov, fields, n, at)
	return prov
}

func (p *parser) credential(n *yaml.Node, at string) *Credential {
	fields := p.object(n, at, "header", "format", "env", "file")
	if fields == nil {
		return nil
	}
	c := &Credential{Header: "Authorization", Format: "Bearer {value}"}

	if f, ok := fields["header"]; ok {
		if s, ok := p.str(f.value, at+".header"); ok {
			if !httpguts.ValidHeaderFieldName(s) {
				p.errorf(f.value, at+".header", "%q is not a valid HTTP header name", s)
			} else if canon := http.CanonicalHeaderKey(s); reservedHeaders[canon] {
				p.errorf(f.value, at+".header", "%s cannot be set by the gateway", canon)
			} else {
				c.Header = canon
			}
		}
	}
	if f, ok := fields["format"]; ok {
		if s, ok := p.str(f.value, at+".format"); ok {
			if !strings.Contains(s, valuePlaceholder) {
				p.errorf(f.value, at+".format", "must contain %s", valuePlaceholder)
			} else if !httpguts.ValidHeaderFieldValue(s) {
				p.errorf(f.value, at+".format", "contains control characters")
			} else {
				c.Format = s
			}
		}
	}

	env, hasEnv := fields["env"]
	file, hasFile := fields["file"]
	switch {
	case hasEnv && hasFile:
		p.errorf(n, at, `set exactly one of "env" or "file", not both`)
		return c
	case !hasEnv && !hasFile:
		p.errorf(n, at, `set one of "env" or "file" (omit credential entirely for an upstream without one)`)
		return c
	case hasEnv:
		name, ok := p.str(env.value, at+".env")
		if !ok {
			return c
		}
		c.Env = name
		v := strings.TrimSpace(p.getenv(name))
		if v == "" {
			p.errorf(env.value, at+".env", "environment variable %s is not set or empty", name)
			return c
		}
		if err := c.setValue(v); err != nil {
			p.errorf(env.value, at+".env", "environment variable %s: %v", name, err)
		}
	case hasFile:
		name, ok := p.str(file.value, at+".file")
		if !ok {
			return c
		}
		c.File = name
		if err := c.loadFile(); err != nil {
			p.errorf(file.value, at+".file", "%v", err)
		}
	}
	return c
}

func validProviderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func parseBaseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("not a valid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("must be an absolute http or https URL with a host, got %q", s)
	}
	if u.User != nil {
		return nil, errors.New("must not contain user info; use credential")
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return nil, fmt.Errorf("must not have a query or fragment, got %q", s)
	}
	return u, nil
}

// reservedHeaders are headers the transport or the hop-by-hop rules own;
// setting them from the providers file would be ignored or break framing.
var reservedHeaders = map[string]bool{
	"Connection":          true,
	"Content-Length":      true,
	"Host":                true,
	"Keep-Alive":          true,
	"Proxy-Authenticate":  true,
	"Proxy-Authorization": true,
	"Proxy-Connection":    true,
	"Te":                  true,
	"Trailer":             true,
	"Transfer-Encoding":   true,
	"Upgrade":             true,
}
