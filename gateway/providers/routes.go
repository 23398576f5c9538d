package providers

import (
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Kind says which API a provider speaks, and so which routes it has
// without a routes: list.
type Kind string

const (
	// KindOpenAI is the OpenAI API and everything compatible with it
	// (vLLM, Ollama's /v1, LiteLLM, ...).
	KindOpenAI Kind = "openai"
	// KindAnthropic is the Anthropic Messages API.
	KindAnthropic Kind = "anthropic"
	// KindCustom has no built-in routes: only the file's routes: are served.
	KindCustom Kind = "custom"
)

// builtinRoutes are the inference endpoints of each kind: they answer a
// request and keep nothing a later request can read back. Endpoints that
// store data under the provider's account (files, batches, stored chat
// completions and responses, assistants, threads, vector stores,
// fine-tuning, the organization admin API) are absent on purpose: behind
// the gateway, every key shares that one account, so anything one key
// holder stores, every other key holder could list, read or delete. An
// operator who wants them lists them in routes:.
var builtinRoutes = map[Kind][]Route{
	KindOpenAI: mustRoutes(
		"POST /v1/chat/completions",
		"POST /v1/completions",
		"POST /v1/embeddings",
		"POST /v1/responses",
		"POST /v1/moderations",
		"POST /v1/audio/*",
		"POST /v1/images/*",
		"GET /v1/models",
		"GET /v1/models/*",
	),
	KindAnthropic: mustRoutes(
		"POST /v1/messages",
		"POST /v1/messages/count_tokens",
		"GET /v1/models",
		"GET /v1/models/*",
	),
	KindCustom: nil,
}

// Route is one method and path that clients may call on a provider, as
// the provider's API reference writes it ("POST /v1/chat/completions"):
// the path the provider receives, baseURL's path included.
type Route struct {
	// Method is an HTTP method, or "*" for any.
	Method string
	// Path is the pattern as written. A "*" segment matches exactly one
	// segment; a last "**" segment matches whatever follows, nothing
	// included.
	Path string
	// segs is Path split at "/".
	segs []string
	// rel is what remains of segs once baseURL's path segments are
	// consumed: the pattern for the part of the request path after
	// /gateway/{provider}. Set by Provider.setRoutes.
	rel []string
}

func (rt Route) String() string { return rt.Method + " " + rt.Path }

// Allows reports whether a client may call method on the provider with
// rest, the decoded request path after /gateway/{provider} ("" or starting
// with "/"). It allocates nothing: it runs on every proxied request.
func (p *Provider) Allows(method, rest string) bool {
	return p.AllowsEscaped(method, rest, "")
}

// AllowsEscaped is Allows that also requires rawRest, the escaped form of
// rest when the client's escaping differs from the default
// (url.URL.RawPath), to match the same route: the provider receives that
// form, so an encoded slash cannot make two segments look like one, or the
// reverse.
func (p *Provider) AllowsEscaped(method, rest, rawRest string) bool {
	for i := range p.Routes {
		rt := &p.Routes[i]
		if rt.Method != "*" && rt.Method != method {
			continue
		}
		if matchSegments(rt.rel, rest) && (rawRest == "" || matchSegments(rt.rel, rawRest)) {
			return true
		}
	}
	return false
}

// matchSegments matches path ("" or starting with "/") against pattern
// segments. Literal segments are compared in place, without looking for
// the next "/" first: this runs for every proxied request.
func matchSegments(segs []string, path string) bool {
	for i, want := range segs {
		if want == "**" {
			return true
		}
		if len(path) < 2 || path[0] != '/' {
			return false // no segment left, or an empty one
		}
		path = path[1:]
		n := len(want)
		if want == "*" {
			n = strings.IndexByte(path, '/')
			if n < 0 {
				n = len(path)
			}
			if n == 0 {
				return false
			}
		} else if !strings.HasPrefix(path, want) || len(path) > n && path[n] != '/' {
			return false
		}
		path = path[n:]
		if path == "" {
			return i == len(segs)-1 || i == len(segs)-2 && segs[i+1] == "**"
		}
	}
	return path == ""
}

// parseRoute parses "METHOD /path".
func parseRoute(s string) (Route, error) {
	method, path, ok := strings.Cut(s, " ")
	path = strings.TrimLeft(path, " ")
	if !ok || method == "" || path == "" || strings.ContainsAny(path, " \t") {
		return Route{}, fmt.Errorf(`%q is not "METHOD /path" (such as "GET /v1/files")`, s)
	}
	if !validMethod(method) {
		return Route{}, fmt.Errorf("method %q must be an HTTP method in capitals (GET, POST, DELETE, ...) or *", method)
	}
	if path[0] != '/' {
		return Route{}, fmt.Errorf("path %q must start with /", path)
	}
	if strings.ContainsAny(path, "?#") {
		return Route{}, fmt.Errorf("path %q must not have a query or fragment", path)
	}
	segs := strings.Split(path[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "" || seg == "." || seg == "..":
			return Route{}, fmt.Errorf(`path %q has an empty, "." or ".." segment`, path)
		case seg == "**" && i != len(segs)-1:
			return Route{}, fmt.Errorf(`path %q: "**" may only be the last segment`, path)
		case seg != "*" && seg != "**" && strings.Contains(seg, "*"):
			return Route{}, fmt.Errorf(`path %q: "*" and "**" must be whole segments`, path)
		case strings.Contains(seg, "%"):
			return Route{}, fmt.Errorf("path %q: write segments unescaped, without %%", path)
		}
	}
	return Route{Method: method, Path: path, segs: segs}, nil
}

func validMethod(m string) bool {
	if m == "*" {
		return true
	}
	for i := 0; i < len(m); i++ {
		if c := m[i]; c < 'A' || c > 'Z' {
			return false
		}
	}
	return m != ""
}

func mustRoutes(specs ...string) []Route {
	out := make([]Route, len(specs))
	for i, s := range specs {
		rt, err := parseRoute(s)
		if err != nil {
			panic(err)
		}
		out[i] = rt
	}
	return out
}

// relativeTo returns the pattern segments left once the base path's
// segments are consumed, or false when no path under base matches.
func relativeTo(segs, base []string) ([]string, bool) {
	for i, b := range base {
		if i == len(segs) {
			return nil, false // every upstream path is longer than the pattern
		}
		switch segs[i] {
		case "**":
			return segs[i:], true
		case "*", b:
		default:
			return nil, false
		}
	}
	return segs[len(base):], true
}

// baseSegments splits a base URL's path into its segments.
func baseSegments(u *url.URL) []string {
	var out []string
	for _, s := range strings.Split(u.Path, "/") {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

// defaultKind is the kind of a provider whose entry has no kind:
// anthropic for a provider named anthropic or one that sends its
// credential in x-api-key (Anthropic's scheme), openai otherwise.
func defaultKind(name string, c *Credential) Kind {
	if name == string(KindAnthropic) || c != nil && c.Header == "X-Api-Key" {
		return KindAnthropic
	}
	return KindOpenAI
}

// kindAndRoutes reads kind: and routes: and sets the provider's routes:
// the kind's built-ins that fit under baseURL's path, then the file's.
func (v *validation) kindAndRoutes(prov *Provider, d *providerDoc, at string) {
	errsBefore := len(v.errs)
	prov.Kind = defaultKind(prov.Name, prov.Credential)
	if d.Kind != nil {
		if s, ok := v.str(d.Kind, at+".kind"); ok {
			switch k := Kind(s); k {
			case KindOpenAI, KindAnthropic, KindCustom:
				prov.Kind = k
			default:
				v.errorf(d.Kind.node, at+".kind", "must be openai, anthropic or custom, got %q", s)
			}
		}
	}
	var base []string
	if prov.BaseURL != nil {
		base = baseSegments(prov.BaseURL)
	}
	for _, rt := range builtinRoutes[prov.Kind] {
		if rel, ok := relativeTo(rt.segs, base); ok {
			rt.rel = rel
			prov.Routes = append(prov.Routes, rt)
		}
	}

	if list := d.Routes; list != nil && given(&list.written) {
		if list.node.Kind != yaml.SequenceNode {
			v.errorf(list.node, at+".routes", `must be a list of "METHOD /path" strings, got %s`, describe(list.node))
			return
		}
		seen := map[string]int{}
		for i := range list.items {
			item := &list.items[i]
			ip := fmt.Sprintf("%s.routes[%d]", at, i)
			s, ok := v.str(item, ip)
			if !ok {
				continue
			}
			rt, err := parseRoute(s)
			if err != nil {
				v.errorf(item.node, ip, "%v", err)
				continue
			}
			if line, dup := seen[rt.String()]; dup {
				v.errorf(item.node, ip, "duplicate route %s (first listed on line %d)", rt, line)
				continue
			}
			seen[rt.String()] = item.node.Line
			rel, ok := relativeTo(rt.segs, base)
			if !ok {
				v.errorf(item.node, ip, "%s is outside baseURL's path %s, so no request can reach it (routes are the provider's paths, baseURL's path included)", rt, prov.BaseURL.Path)
				continue
			}
			rt.rel = rel
			prov.Routes = append(prov.Routes, rt)
		}
	}
	// A provider nobody can call is a mistake worth stopping for.
	if len(prov.Routes) == 0 && prov.BaseURL != nil && len(v.errs) == errsBefore {
		if prov.Kind == KindCustom {
			v.errorf(d.node, at, `kind custom has no built-in routes: list the ones clients may call in "routes"`)
		} else {
			v.errorf(d.node, at, `none of kind %s's built-in routes is under baseURL's path %s: list the ones clients may call in "routes"`, prov.Kind, prov.BaseURL.Path)
		}
	}
}
