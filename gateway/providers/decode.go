package providers

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decodeFile decodes a providers file into its types (schema.go) with
// yaml.v3's KnownFields on. The error is a YAML syntax error or yaml.v3
// giving up (excessive aliasing); everything else yaml.v3 finds is kept
// on the value it is about, for Validate to report with its field path.
// An empty file decodes to a fileDoc without a node.
func decodeFile(data []byte) (*fileDoc, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var doc fileDoc
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		// A TypeError cannot come out: every schema type takes the
		// errors of its own level. Should one, it is a problem of the
		// file all the same, and is reported as yaml.v3 words it.
		return nil, errors.New(syntaxError(err))
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
	// broken is set when yaml.v3 decoded nothing of this map (it had a
	// duplicate key): its fields are not there to check.
	broken bool
}

func (w *written) where() *yaml.Node  { return w.node }
func (w *written) place(n *yaml.Node) { w.node = n }

// problem is one of yaml.v3's errors about a map, reworded as the
// walk over the node tree this decoder replaced worded it.
type problem struct {
	line int
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
// without this method), keeps yaml.v3's errors at this level as problems,
// and keeps fields written as null (yaml.v3 leaves them nil, like absent
// ones). A value that is not a map is left to Validate to name.
func (w *written) decodeStruct(unmarshal func(any) error, fields any) error {
	n, err := w.catch(unmarshal)
	if n == nil || n.Kind != yaml.MappingNode {
		return err
	}
	st := reflect.ValueOf(fields).Elem()
	if !w.keep(n, unmarshal(fields), st.Type()) {
		return nil
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

// fieldByTag is the field of struct st whose yaml tag is name.
func fieldByTag(st reflect.Value, name string) (reflect.Value, bool) {
	for i := 0; i < st.NumField(); i++ {
		if yamlName(st.Type().Field(i)) == name {
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

// yaml.v3's TypeError lines that are reworded. Each starts "line N: ".
var (
	unknownFieldError = regexp.MustCompile(`^line (\d+): field (.*) not found in type \S+$`)
	duplicateError    = regexp.MustCompile(`^line (\d+): (?:mapping key (".*") already defined at line \d+|field (.*) already set in type \S+)$`)
	errorLine         = regexp.MustCompile(`^line (\d+): `)
)

// keep turns err, yaml.v3's error for decoding map node n (into struct
// type schema, or nil for a Go map), into problems of w, with the wording and the lines of the walk it replaced: a key
// that is not a string on its own line, "unknown field" with the known
// fields, a duplicate key with the line of its first definition. It
// reports whether yaml.v3 decoded the map's entries (it does not when a
// key is duplicated).
func (w *written) keep(n *yaml.Node, err error, schema reflect.Type) bool {
	// Keys that are not strings are found on the node: yaml.v3's error
	// for them ("cannot unmarshal !!seq into string") names no key.
	badKeyLines := map[int]bool{}
	firstLine := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := resolve(n.Content[i])
		if !stringKey(k) {
			w.problems = append(w.problems, problem{line: k.Line, msg: "keys must be strings, got " + describe(k)})
			badKeyLines[k.Line] = true
		} else if _, dup := firstLine[k.Value]; !dup {
			firstLine[k.Value] = k.Line
		}
	}
	var te *yaml.TypeError
	if err == nil || !errors.As(err, &te) {
		return err == nil
	}
	var known string
	reported := map[int]bool{} // duplicates, by line: yaml.v3 names each pair
	for _, msg := range te.Errors {
		line := 0
		if m := errorLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		if m := unknownFieldError.FindStringSubmatch(msg); m != nil && schema != nil && hasKey(n, line, m[2]) {
			if known == "" {
				known = knownFields(schema)
			}
			w.problems = append(w.problems, problem{line: line, msg: "unknown field " + strconv.Quote(m[2]) + " (known fields: " + known + ")"})
			continue
		}
		if m := duplicateError.FindStringSubmatch(msg); m != nil {
			key := m[3]
			if m[2] != "" {
				key, _ = strconv.Unquote(m[2])
			}
			w.broken = w.broken || m[2] != ""
			if !reported[line] && !badKeyLines[line] {
				reported[line] = true
				w.problems = append(w.problems, problem{line: line, key: key, msg: "duplicate key (first defined on line " + strconv.Itoa(firstLine[key]) + ")"})
			}
			continue
		}
		if badKeyLines[line] {
			continue // the key is already reported
		}
		w.problems = append(w.problems, problem{line: line, msg: strings.TrimPrefix(msg, errorLine.FindString(msg))})
	}
	return !w.broken
}

// hasKey reports whether map node n has key name on line.
func hasKey(n *yaml.Node, line int, name string) bool {
	for i := 0; i < len(n.Content); i += 2 {
		if k := resolve(n.Content[i]); k.Line == line && k.Value == name && stringKey(k) {
			return true
		}
	}
	return false
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
