package providers

import "go.yaml.in/yaml/v3"

// The providers file as Go types (docs/design.md, section 7.2). yaml.v3
// decodes into them with KnownFields (decode.go); Validate
// (validate.go) reads them and builds the Providers the gateway serves.
// Every value keeps the node it was decoded from, so each error names the
// line it is about; the maps whose order counts ("first match wins") are
// ordered. The order of each struct's fields is the order of the "known
// fields" list its unknown-field error prints.

// fileDoc is the whole file.
type fileDoc struct {
	written   `yaml:"-"`
	Providers *ordered[providerDoc] `yaml:"providers"`
}

// providerDoc is one entry under providers:.
type providerDoc struct {
	written         `yaml:"-"`
	Kind            *text              `yaml:"kind"`
	BaseURL         *text              `yaml:"baseURL"`
	Credential      *credentialDoc     `yaml:"credential"`
	Headers         *ordered[text]     `yaml:"headers"`
	Models          *ordered[text]     `yaml:"models"`
	Routes          *textList          `yaml:"routes"`
	Pricing         *ordered[priceDoc] `yaml:"pricing"`
	MaxOutputTokens *ordered[text]     `yaml:"maxOutputTokens"`
}

// credentialDoc is a provider's credential:.
type credentialDoc struct {
	written `yaml:"-"`
	Header  *text `yaml:"header"`
	Format  *text `yaml:"format"`
	Env     *text `yaml:"env"`
	File    *text `yaml:"file"`
}

// priceDoc is one model glob's entry under pricing:.
type priceDoc struct {
	written `yaml:"-"`
	Input   *text `yaml:"input"`
	Output  *text `yaml:"output"`
}

func (d *fileDoc) UnmarshalYAML(unmarshal func(any) error) error {
	type fields fileDoc // the same fields without this method, so yaml.v3 decodes them
	return d.decodeStruct(unmarshal, (*fields)(d))
}

func (d *providerDoc) UnmarshalYAML(unmarshal func(any) error) error {
	type fields providerDoc
	return d.decodeStruct(unmarshal, (*fields)(d))
}

func (d *credentialDoc) UnmarshalYAML(unmarshal func(any) error) error {
	type fields credentialDoc
	return d.decodeStruct(unmarshal, (*fields)(d))
}

func (d *priceDoc) UnmarshalYAML(unmarshal func(any) error) error {
	type fields priceDoc
	return d.decodeStruct(unmarshal, (*fields)(d))
}

// text is a scalar taken as written, whatever YAML would resolve it to:
// `anthropic-version: 2023-06-01` is the string "2023-06-01", not a
// timestamp. It keeps any node, so Validate can say "must be a non-empty
// string, got a map" on the value's line rather than yaml.v3's "cannot
// unmarshal !!map into string".
type text struct{ written }

func (t *text) UnmarshalYAML(n *yaml.Node) error {
	t.node = n
	return nil
}

// textList is a list of texts (routes:). A value that is not a list is
// kept for Validate to name.
type textList struct {
	written
	items []text
}

func (l *textList) UnmarshalYAML(n *yaml.Node) error {
	l.node = n
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			// Items are taken one by one, not decoded as a []text: a null
			// item must stay an error on its line, and yaml.v3 never hands
			// a null to an Unmarshaler.
			l.items = append(l.items, text{written{node: resolve(item)}})
		}
	}
	return nil
}

// ordered is a map of the file kept in the file's order: the providers
// (whose order is the order of Providers.List and of the messages that
// list them) and the model-glob maps, where the first matching glob wins.
type ordered[V any] struct {
	written
	entries []entry[V]
}

// entry is one key of an ordered map, its node, and its decoded value.
type entry[V any] struct {
	key     string
	keyNode *yaml.Node
	value   V
}

// UnmarshalYAML has yaml.v3 decode the map into a Go map, with the same
// decoder and so with KnownFields still on for the values (a nested
// Node.Decode would drop it), then takes the keys' order from the node.
func (o *ordered[V]) UnmarshalYAML(unmarshal func(any) error) error {
	n, err := o.catch(unmarshal)
	if n == nil || n.Kind != yaml.MappingNode {
		return err
	}
	values := map[string]V{}
	if err := o.decodeMap(n, unmarshal, &values, nil); err != nil {
		return err
	}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), resolve(n.Content[i+1])
		if !stringKey(k) || seen[k.Value] {
			continue // reported by decodeMap
		}
		seen[k.Value] = true
		value := values[k.Value]
		placeNull(&value, v)
		o.entries = append(o.entries, entry[V]{key: k.Value, keyNode: k, value: value})
	}
	return nil
}
