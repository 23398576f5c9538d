package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestSchemaTypesEveryValue walks values.yaml beside values.schema.json:
// every value the chart documents has a type in the schema, and the
// schema refuses keys it does not know (a typo is an error, not a silently
// ignored value). Free-form Kubernetes fields (affinity, tolerations,
// labels, annotations) are typed as objects, arrays or string maps.
func TestSchemaTypesEveryValue(t *testing.T) {
	var values map[string]any
	raw, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	raw, err = os.ReadFile(filepath.Join(chartDir, "values.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	checked := 0
	var walk func(path string, v any, s map[string]any)
	walk = func(path string, v any, s map[string]any) {
		if s == nil {
			t.Errorf("%s: no schema", path)
			return
		}
		_, typed := s["type"]
		_, isConst := s["const"]
		_, anyOf := s["anyOf"]
		if !typed && !isConst && !anyOf {
			t.Errorf("%s: the schema gives it no type", path)
		}
		checked++
		m, ok := v.(map[string]any)
		if !ok {
			return
		}
		props, _ := s["properties"].(map[string]any)
		addl, hasAddl := s["additionalProperties"]
		if props != nil && (!hasAddl || addl != false) && path != "" && !strings.HasSuffix(path, "SecurityContext") && !strings.HasSuffix(path, "securityContext") {
			t.Errorf("%s: the schema lists its keys but accepts others (additionalProperties: false)", path)
		}
		for k, sub := range m {
			p := strings.TrimPrefix(path+"."+k, ".")
			if ps, ok := props[k].(map[string]any); ok {
				walk(p, sub, ps)
			} else if as, ok := addl.(map[string]any); ok {
				walk(p, sub, as)
			} else if props != nil || addl == false {
				t.Errorf("%s: in values.yaml but not in values.schema.json", p)
			}
		}
	}
	if schema["additionalProperties"] != false {
		t.Error("the schema accepts unknown top-level values")
	}
	walk("", values, schema)
	if checked < 60 {
		t.Errorf("checked %d values, want every value of values.yaml", checked)
	}
}
