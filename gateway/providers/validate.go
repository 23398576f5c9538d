package providers

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"strings"

	"go.yaml.in/yaml/v3"
	"golang.org/x/net/http/httpguts"
)

// Validate checks the decoded file and builds from it the Providers the
// gateway serves. It reports every problem, each with its line and field
// path (source, the file name, heads each message when set), and
// yaml.v3's own findings the decode kept (unknown fields, duplicate keys)
// among them. getenv resolves credential env vars; credential files are
// read now.
func (d *fileDoc) Validate(source string, getenv func(string) string) (*Providers, error) {
	v := &validation{source: source, getenv: getenv, routeNodes: map[string][]*yaml.Node{}}
	if d.node == nil {
		v.errorf(nil, "", `file is empty: expected a top-level "providers" map`)
		return nil, v.err()
	}
	if !v.object(&d.written, "") {
		return nil, v.err()
	}
	if d.Providers == nil {
		if len(v.errs) == 0 {
			v.errorf(d.node, "", `missing required field "providers"`)
		}
		return nil, v.err()
	}

	ps := &Providers{byName: map[string]*Provider{}}
	list, ok := entries(v, d.Providers, "providers")
	if ok && len(list) == 0 {
		v.errorf(d.Providers.node, "providers", "no providers defined")
	}
	for _, e := range list {
		fieldPath := "providers." + e.key
		if !validProviderName(e.key) {
			v.errorf(e.keyNode, fieldPath, "provider name must match [a-z0-9-]+")
			continue
		}
		prov := v.provider(e.key, &e.value, fieldPath)
		ps.list = append(ps.list, prov)
		ps.byName[prov.Name] = prov
	}

	// Routes are checked once every provider is known, so a route may name a
	// provider defined further down the file.
	for _, prov := range ps.list {
		for i, r := range prov.Models {
			if _, ok := ps.byName[r.Provider]; !ok {
				v.errorf(v.routeNodes[prov.Name][i], fieldPath("providers."+prov.Name+".models", r.Pattern),
					"unknown provider %q", r.Provider)
			}
		}
	}

	if err := v.err(); err != nil {
		return nil, err
	}
	return ps, nil
}

// validation collects the problems Validate finds.
type validation struct {
	source string
	getenv func(string) string
	errs   []error
	// routeNodes holds, per provider, the value node of each models entry
	// (aligned with Provider.Models) so a route to an unknown provider can
	// be reported on its line once all providers are known.
	routeNodes map[string][]*yaml.Node
}

// errorf records a problem at node n (nil for none) and field path at.
func (v *validation) errorf(n *yaml.Node, at, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	v.errorAt(line, at, fmt.Sprintf(format, args...))
}

func (v *validation) errorAt(line int, at, msg string) {
	v.errs = append(v.errs, &ConfigError{Source: v.source, Line: line, Field: at, Msg: msg})
}

func (v *validation) err() error { return errors.Join(v.errs...) }

// object reports what decoding found wrong with the map at field path at
// and whether its fields are there to check: false when the value is not
// a map.
func (v *validation) object(w *written, at string) bool {
	if w.node.Kind != yaml.MappingNode {
		v.errorf(w.node, orTop(at), "must be a map, got %s", describe(w.node))
		return false
	}
	for _, p := range w.problems {
		field := orTop(at)
		if p.key != "" {
			field = fieldPath(field, p.key)
		}
		v.errorAt(p.line, field, p.msg)
	}
	return true
}

// entries returns an ordered map's entries, after reporting what decoding
// found wrong with it; ok is false when it is not a map.
func entries[V any](v *validation, o *ordered[V], at string) (list []entry[V], ok bool) {
	if !v.object(&o.written, at) {
		return nil, false
	}
	return o.entries, true
}

// globEntries is entries for a map keyed by model globs (models:,
// pricing:, maxOutputTokens:): the entries whose key is a valid
// path.Match pattern, each with its field path; invalid ones are reported.
func globEntries[V any](v *validation, o *ordered[V], at string) []globEntry[V] {
	var out []globEntry[V]
	list, _ := entries(v, o, at)
	for _, e := range list {
		ep := fieldPath(at, e.key)
		if _, err := path.Match(e.key, ""); err != nil {
			v.errorf(e.keyNode, ep, "invalid glob pattern %q", e.key)
			continue
		}
		out = append(out, globEntry[V]{entry: e, at: ep})
	}
	return out
}

// globEntry is an entry of a glob-keyed map and its field path.
type globEntry[V any] struct {
	entry[V]
	at string
}

// given reports whether the file sets the value to something other than
// null (which, for an optional part, means the same as leaving it out).
func given(w *written) bool { return !isNull(w.node) }

// str returns the text of a scalar. The raw text is used whatever YAML
// would resolve it to (see text).
func (v *validation) str(t *text, at string) (string, bool) {
	n := t.node
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		v.errorf(n, at, "must be a non-empty string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func (v *validation) provider(name string, d *providerDoc, at string) *Provider {
	prov := &Provider{Name: name}
	if !v.object(&d.written, at) {
		return prov
	}

	if d.BaseURL == nil || !given(&d.BaseURL.written) {
		v.errorf(d.node, at, `missing required field "baseURL"`)
	} else if s, ok := v.str(d.BaseURL, at+".baseURL"); ok {
		u, err := parseBaseURL(s)
		if err != nil {
			v.errorf(d.BaseURL.node, at+".baseURL", "%v", err)
		}
		prov.BaseURL = u
	}

	if d.Credential != nil && given(&d.Credential.written) {
		prov.Credential = v.credential(d.Credential, at+".credential")
	}

	if d.Headers != nil && given(&d.Headers.written) {
		prov.Headers = http.Header{}
		list, _ := entries(v, d.Headers, at+".headers")
		for _, h := range list {
			hp := fieldPath(at+".headers", h.key)
			if !httpguts.ValidHeaderFieldName(h.key) {
				v.errorf(h.keyNode, hp, "not a valid HTTP header name")
				continue
			}
			canon := http.CanonicalHeaderKey(h.key)
			if reservedHeaders[canon] {
				v.errorf(h.keyNode, hp, "%s cannot be set by the gateway", canon)
				continue
			}
			if c := prov.Credential; c != nil && c.Header == canon {
				v.errorf(h.keyNode, hp, "conflicts with credential.header")
				continue
			}
			value, ok := v.str(&h.value, hp)
			if !ok {
				continue
			}
			if !httpguts.ValidHeaderFieldValue(value) {
				v.errorf(h.value.node, hp, "value contains control characters")
				continue
			}
			prov.Headers[canon] = []string{value}
		}
	}

	if d.Models != nil && given(&d.Models.written) {
		for _, m := range globEntries(v, d.Models, at+".models") {
			target, ok := v.str(&m.value, m.at)
			if !ok {
				continue
			}
			prov.Models = append(prov.Models, ModelRoute{Pattern: m.key, Provider: target})
			v.routeNodes[name] = append(v.routeNodes[name], m.value.node)
		}
	}

	if d.Pricing != nil && given(&d.Pricing.written) {
		v.pricing(prov, d.Pricing, at+".pricing")
	}
	if d.MaxOutputTokens != nil && given(&d.MaxOutputTokens.written) {
		v.maxOutputTokens(prov, d.MaxOutputTokens, at+".maxOutputTokens")
	}

	v.kindAndRoutes(prov, d, at)
	return prov
}

func (v *validation) credential(d *credentialDoc, at string) *Credential {
	if !v.object(&d.written, at) {
		return nil
	}
	c := &Credential{Header: "Authorization", Format: "Bearer {value}"}

	if d.Header != nil {
		if s, ok := v.str(d.Header, at+".header"); ok {
			if !httpguts.ValidHeaderFieldName(s) {
				v.errorf(d.Header.node, at+".header", "%q is not a valid HTTP header name", s)
			} else if canon := http.CanonicalHeaderKey(s); reservedHeaders[canon] {
				v.errorf(d.Header.node, at+".header", "%s cannot be set by the gateway", canon)
			} else {
				c.Header = canon
			}
		}
	}
	if d.Format != nil {
		if s, ok := v.str(d.Format, at+".format"); ok {
			if !strings.Contains(s, valuePlaceholder) {
				v.errorf(d.Format.node, at+".format", "must contain %s", valuePlaceholder)
			} else if !httpguts.ValidHeaderFieldValue(s) {
				v.errorf(d.Format.node, at+".format", "contains control characters")
			} else {
				c.Format = s
			}
		}
	}

	switch {
	case d.Env != nil && d.File != nil:
		v.errorf(d.node, at, `set exactly one of "env" or "file", not both`)
	case d.Env == nil && d.File == nil:
		v.errorf(d.node, at, `set one of "env" or "file" (omit credential entirely for an upstream without one)`)
	case d.Env != nil:
		name, ok := v.str(d.Env, at+".env")
		if !ok {
			return c
		}
		c.Env = name
		value := strings.TrimSpace(v.getenv(name))
		if value == "" {
			v.errorf(d.Env.node, at+".env", "environment variable %s is not set or empty", name)
			return c
		}
		if err := c.setValue(value); err != nil {
			v.errorf(d.Env.node, at+".env", "environment variable %s: %v", name, err)
		}
	default:
		name, ok := v.str(d.File, at+".file")
		if !ok {
			return c
		}
		c.File = name
		if err := c.loadFile(); err != nil {
			v.errorf(d.File.node, at+".file", "%v", err)
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
