package providers

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// syntaxError words a YAML syntax error as yaml.v3 reports it, without its
// "yaml: " prefix: "line N: problem". For a problem inside a block (a
// mis-indented key, an unclosed flow map) N is the line where that block
// starts, which is where to start looking, not always the line of the
// mistake: yaml.v3 reports the context's position rather than the
// problem's. Getting the exact line took a second parse with yaml.v2 and
// matching its error wording; not worth a second YAML implementation.
func syntaxError(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// errorf records a problem at node n (nil for none) and field path at.
func (p *parser) errorf(n *yaml.Node, at, format string, args ...any) {
	e := &ConfigError{Source: p.source, Field: at, Msg: fmt.Sprintf(format, args...)}
	if n != nil {
		e.Line = n.Line
	}
	p.errs = append(p.errs, e)
}

func (p *parser) err() error { return errors.Join(p.errs...) }

type entry struct {
	key     string
	keyNode *yaml.Node
	value   *yaml.Node
}

// entries returns the key/value pairs of a mapping node in file order,
// reporting a node that is not a mapping, non-scalar keys and duplicate keys.
// It returns nil after reporting a problem with n itself.
func (p *parser) entries(n *yaml.Node, at string) []entry {
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		p.errorf(n, at, "must be a map, got %s", describe(n))
		return nil
	}
	out := make([]entry, 0, len(n.Content)/2)
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || isNull(k) {
			p.errorf(k, at, "keys must be strings, got %s", describe(k))
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.errorf(k, fieldPath(at, k.Value), "duplicate key (first defined on line %d)", line)
			continue
		}
		seen[k.Value] = k.Line
		out = append(out, entry{key: k.Value, keyNode: k, value: v})
	}
	return out
}

// object is entries for a mapping with a fixed set of fields: any other key
// is an error. It returns nil after reporting a problem with n itself.
func (p *parser) object(n *yaml.Node, at string, known ...string) map[string]entry {
	es := p.entries(n, orTop(at))
	if es == nil {
		return nil
	}
	out := make(map[string]entry, len(es))
	for _, e := range es {
		isKnown := false
		for _, k := range known {
			if e.key == k {
				isKnown = true
				break
			}
		}
		if !isKnown {
			p.errorf(e.keyNode, orTop(at), "unknown field %q (known fields: %s)", e.key, strings.Join(known, ", "))
			continue
		}
		out[e.key] = e
	}
	return out
}

// globEntries is entries for a map keyed by model globs (models:,
// pricing:, maxOutputTokens:): the entries whose key is a valid
// path.Match pattern, each with its field path; invalid ones are reported.
func (p *parser) globEntries(n *yaml.Node, at string) []globEntry {
	var out []globEntry
	for _, e := range p.entries(n, at) {
		ep := fieldPath(at, e.key)
		if _, err := path.Match(e.key, ""); err != nil {
			p.errorf(e.keyNode, ep, "invalid glob pattern %q", e.key)
			continue
		}
		out = append(out, globEntry{entry: e, at: ep})
	}
	return out
}

// globEntry is an entry of a glob-keyed map and its field path.
type globEntry struct {
	entry
	at string
}

// str returns the text of a scalar node. The raw text is used whatever YAML
// would resolve it to, so `anthropic-version: 2023-06-01` is the string
// "2023-06-01", not a timestamp.
func (p *parser) str(n *yaml.Node, at string) (string, bool) {
	n = resolve(n)
	if n.Kind != yaml.ScalarNode || isNull(n) || n.Value == "" {
		p.errorf(n, at, "must be a non-empty string, got %s", describe(n))
		return "", false
	}
	return n.Value, true
}

func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func describe(n *yaml.Node) string {
	switch {
	case n == nil || isNull(n):
		return "null"
	case n.Kind == yaml.MappingNode:
		return "a map"
	case n.Kind == yaml.SequenceNode:
		return "a list"
	case n.Value == "":
		return "an empty string"
	default:
		return strconv.Quote(n.Value)
	}
}

func orTop(at string) string {
	if at == "" {
		return "(top level)"
	}
	return at
}

// fieldPath appends a map key to a field path: providers.openai for plain
// keys, providers.openai.models["claude-*"] for keys that need quoting.
func fieldPath(at, key string) string {
	for _, c := range key {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return at + "[" + strconv.Quote(key) + "]"
		}
	}
	return at + "." + key
}
