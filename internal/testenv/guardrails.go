package testenv

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/codevector/codevector/internal/devmode"
)

// GuardrailsSample is the file a cluster admin applies to give namespace
// team-a guardrails: a ConfigMap in the system namespace and the bindings
// that attach it to team-a.
const GuardrailsSample = "config/samples/guardrails.yaml"

// Guardrails are the objects BindGuardrails created for one namespace.
type Guardrails struct {
	// ConfigMap is the name of the settings' ConfigMap in the system
	// namespace.
	ConfigMap string
	// Objects are the ConfigMap and the bindings, as created.
	Objects []*unstructured.Unstructured
}

// BindGuardrails does for namespace ns what a cluster admin does for
// team-a with GuardrailsSample, as the cluster-admin client: the sample
// with team-a replaced by ns everywhere. data, unless nil, replaces the
// sample's settings. Everything is deleted when the test ends; the API
// server enforces new params a moment after they are created, so tests
// wait for the guardrails with a probe.
func (e *Env) BindGuardrails(t testing.TB, ns string, data map[string]string) *Guardrails {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(e.Root, GuardrailsSample))
	if err != nil {
		t.Fatal(err)
	}
	objs, err := devmode.DecodeYAML([]byte(strings.ReplaceAll(string(raw), "team-a", ns)))
	if err != nil {
		t.Fatalf("%s: %v", GuardrailsSample, err)
	}
	g := &Guardrails{Objects: objs}
	ctx := context.Background()
	for _, o := range objs {
		// An object the sample leaves without a namespace goes into ns, as
		// `kubectl apply -n NS` would place it.
		if namespaced, err := e.Client.IsObjectNamespaced(o); err != nil {
			t.Fatalf("%s %s from %s: %v", o.GetKind(), o.GetName(), GuardrailsSample, err)
		} else if namespaced && o.GetNamespace() == "" {
			o.SetNamespace(ns)
		}
		if o.GetKind() == "ConfigMap" {
			g.ConfigMap = o.GetName()
			if data != nil {
				if err := unstructured.SetNestedStringMap(o.Object, data, "data"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := e.Client.Create(ctx, o); err != nil {
			t.Fatalf("creating %s %s from %s: %v", o.GetKind(), o.GetName(), GuardrailsSample, err)
		}
		t.Cleanup(func() {
			if err := e.Client.Delete(context.Background(), o); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("deleting %s %s: %v", o.GetKind(), o.GetName(), err)
			}
		})
	}
	if g.ConfigMap == "" {
		t.Fatalf("%s has no ConfigMap", GuardrailsSample)
	}
	return g
}
