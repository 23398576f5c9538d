package providers

import (
	"bytes"
	"cmp"
	"errors"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeFile decodes a providers file into its types (schema.go) with
// yaml.v3's KnownFields on; docs/design.md, section 17 says what is
// written by hand around it and why. The error is a YAML syntax error or yaml.v3
// giving up (excessive aliasing); everything else yaml.v3 finds is kept
// on the value it is about, for Validate to report with its field path.
// A file without a document decodes to a fileDoc without a node.
func decodeFile(data []byte) (*fileDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileDoc
	err := dec.Decode(&doc)
	switch {
	case errors.Is(err, io.EOF):
		return &doc, nil // no document at all
	case err != nil:
		// A TypeError cannot come out: every schema type takes the
		// errors of its own level. Should one, it is a problem of the
		// file all the same, and is reported as yaml.v3 words it.
		return nil, errors.New(syntaxError(err))
	case doc.node == nil:
		// The document is a null ("~", a lone anchor or tag), which
		// yaml.v3 hands to no UnmarshalYAML. Its node, for its line,
		// costs a second parse of what is at most a line or two.
		var n yaml.Node
		if yaml.Unmarshal(data, &n) == nil && len(n.Content) > 0 {
			doc.node = resolve(n.Content[0])
		}
	}
	return &doc, nil
}

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

// written is where a value of the file was written, and what yaml.v3
// found wrong at its level: unknown fields, duplicate keys, keys that are
// not strings. It is embedded in every schema type.
type written struct {
	// node is the value's node, aliases resolved; nil when the file does
	// not have the value, a null node when it has it as null.
	node *yaml.Node
	// problems are yaml.v3's errors at this value's level, reworded.
	problems []problem
}

func (w *written) where() *yaml.Node  { return w.node }
func (w *written) place(n *yaml.Node) { w.node = n }

// problem is one of yaml.v3's errors about a map, reworded as the
// walk over the node tree this decoder replaced worded it.
type problem struct {
	// line and col are where the problem is, col to keep the file's
	// order among keys of one line.
	line, col int
	// key, when set, is appended to the map's field path: the problem is
	// about that key's entry (a duplicate), not the map.
	key string
	msg string
}

// nodeCatcher captures the node it is decoded from, as is. (The
// unmarshal function an UnmarshalYAML(func(any) error) receives cannot
// fill a *yaml.Node: it would decode into the Node struct's fields.)
type nodeCatcher struct{ n *yaml.Node }

func (c *nodeCatcher) UnmarshalYAML(n *yaml.Node) error {
	c.n = n
	return nil
}

// catch records the node a map-shaped value is decoded from. It is nil
// only when yaml.v3 gave up, which the error says.
func (w *written) catch(unmarshal func(any) error) (*yaml.Node, error) {
	var c nodeCatcher
	if err := unmarshal(&c); err != nil {
		return nil, err
	}
	w.node = c.n
	return c.n, nil
}

// decodeStruct is the UnmarshalYAML of each schema struct: it records
// the node, has yaml.v3 decode fields (the struct's fields under a type
// without this method), and keeps fields written as null (yaml.v3 leaves
// them nil, like absent ones). A value that is not a map is left to
// Validate to name.
func (w *written) decodeStruct(unmarshal func(any) error, fields any) error {
	n, err := w.catch(unmarshal)
	if n == nil || n.Kind != yaml.MappingNode {
		return err
	}
	st := reflect.ValueOf(fields).Elem()
	if err := w.decodeMap(n, unmarshal, fields, st.Type()); err != nil {
		return err
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if !isNull(v) || !stringKey(k) {
			continue
		}
		if f, ok := fieldByTag(st, k.Value); ok && f.IsNil() {
			f.Set(reflect.New(f.Type().Elem()))
			placeNull(f.Interface(), v)
		}
	}
	return nil
}

// decodeMap has yaml.v3 decode map node n into target, a schema struct
// (schema is its type) or a Go map (schema nil), and keeps what is wrong
// at this level as problems of w, worded as the walk over the node tree
// this decoder replaced worded them.
//
// The keys are checked on the node first, and the entries yaml.v3 would
// mishandle are taken out of n while it decodes: keys that are not
// strings (its error for them, "cannot unmarshal !!seq into string",
// names no key) and duplicate keys (it would decode nothing of the map,
// so the map's other problems would go unreported; the node has each
// duplicate once, where yaml.v3 names every pair). A merge key ("<<") is
// decoded as the plain key it is in the file format, which has no
// merges: yaml.v3 would merge silently.
//
// The error is yaml.v3 giving up (excessive aliasing), which ends the
// decode.
func (w *written) decodeMap(n *yaml.Node, unmarshal func(any) error, target any, schema reflect.Type) error {
	var kept []*yaml.Node
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		line, dup := firstLine[k.Value]
		switch {
		case !stringKey(k):
			w.problems = append(w.problems, problem{line: k.Line, col: k.Column, msg: "keys must be strings, got " + describe(k)})
		case dup:
			w.problems = append(w.problems, problem{line: k.Line, col: k.Column, key: k.Value, msg: "duplicate key (first defined on line " + strconv.Itoa(line) + ")"})
		case k.Tag == "!!merge":
			k.Tag = "!!str"
			defer func() { k.Tag = "!!merge" }()
			fallthrough
		default:
			firstLine[k.Value] = k.Line
			kept = append(kept, n.Content[i], n.Content[i+1])
		}
	}
	if len(kept) < len(n.Content) {
		full := n.Content
		n.Content = kept
		defer func() { n.Content = full }()
	}
	err := unmarshal(target)
	var te *yaml.TypeError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	w.reword(n, te, schema)
	// In the file's order, as a walk over the keys would find them.
	slices.SortStableFunc(w.problems, func(a, b problem) int {
		return cmp.Or(cmp.Compare(a.line, b.line), cmp.Compare(a.col, b.col))
	})
	return nil
}

// placeNull gives a value yaml.v3 left unset because it was written as
// null the node it was written with.
func placeNull(v any, n *yaml.Node) {
	if p, ok := v.(interface {
		where() *yaml.Node
		place(*yaml.Node)
	}); ok && p.where() == nil {
		p.place(n)
	}
}

// fieldByTag is the field of struct st whose yaml tag is name. An empty
// name (a key written "") is no field, not the untagged written.
func fieldByTag(st reflect.Value, name string) (reflect.Value, bool) {
	for i := 0; i < st.NumField(); i++ {
		if n := yamlName(st.Type().Field(i)); n != "" && n == name {
			return st.Field(i), true
		}
	}
	return reflect.Value{}, false
}

// knownFields lists the yaml names of the struct's fields, in order.
func knownFields(st reflect.Type) string {
	var names []string
	for i := 0; i < st.NumField(); i++ {
		if name := yamlName(st.Field(i)); name != "" {
			names = append(names, name)
		}
	}
	return strings.Join(names, ", ")
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// yaml.v3's TypeError lines, each "line N: problem", and the one that
// is reworded.
var (
	errorLine         = regexp.MustCompile(`^line (\d+): `)
	unknownFieldError = regexp.MustCompile(`(?s)^line (\d+): field (.*) not found in type \S+$`)
)

// reword keeps te, yaml.v3's errors for decoding map node n, as problems
// of w: an unknown field (KnownFields) with the line of its key and the
// known fields; anything else (no schema type can produce it today) as
// yaml.v3 words it, without losing it.
func (w *written) reword(n *yaml.Node, te *yaml.TypeError, schema reflect.Type) {
	if te == nil {
		return
	}
	for _, msg := range te.Errors {
		line := n.Line
		if m := errorLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		if m := unknownFieldError.FindStringSubmatch(msg); m != nil && schema != nil {
			if k := keyAt(n, line, m[2]); k != nil {
				w.problems = append(w.problems, unknownField(k, schema))
				continue
			}
		}
		w.problems = append(w.problems, problem{line: line, msg: strings.TrimPrefix(msg, errorLine.FindString(msg))})
	}
}

// unknownField is the problem of key k, which is no field of schema,
// listing the fields that are.
func unknownField(k *yaml.Node, schema reflect.Type) problem {
	return problem{line: k.Line, col: k.Column, msg: "unknown field " + strconv.Quote(k.Value) + " (known fields: " + knownFields(schema) + ")"}
}

// keyAt is map node n's key name written on line (yaml.v3 names the line
// of an alias, not of its anchor), aliases resolved, or nil.
func keyAt(n *yaml.Node, line int, name string) *yaml.Node {
	for i := 0; i < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); n.Content[i].Line == line && k.Value == name && stringKey(k) {
			return k
		}
	}
	return nil
}

// stringKey reports whether k can be a key of the file: a non-null scalar.
func stringKey(k *yaml.Node) bool { return k.Kind == yaml.ScalarNode && !isNull(k) }

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
