package devmode

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/config"
)

// FieldOwner is the server-side apply field manager of everything Install
// writes.
const FieldOwner = "codevector-bootstrap"

// Install prepares a bare API server for CodeVector, from the manifests
// embedded by package config: it applies the CRD and waits until the API
// server serves it, creates the system namespace, applies the RBAC roles and
// the admission policies, and waits until a probe shows both policies in
// force. Dev mode and the test environment (internal/testenv) both call it,
// so tests run against exactly what dev mode (and `kubectl apply -k
// config/default`) installs. It is idempotent: a second call (dev mode's
// restart) updates what changed and waits again.
//
// c must be allowed to do all of that (cluster-admin).
func Install(ctx context.Context, cfg *rest.Config, c client.Client) error {
	for _, m := range config.CRDs() {
		if err := ApplyYAML(ctx, c, m.Data, m.Path); err != nil {
			return err
		}
	}
	if err := waitForAPIKeysServed(ctx, cfg); err != nil {
		return err
	}
	if err := CreateNamespace(ctx, c, gatewayv1alpha1.DefaultSystemNamespace); err != nil {
		return err
	}
	for _, m := range append(config.RBAC(), config.Policies()...) {
		if err := ApplyYAML(ctx, c, m.Data, m.Path); err != nil {
			return err
		}
	}
	if err := deleteLegacyGuardrailBindings(ctx, c); err != nil {
		return err
	}
	return WaitForPolicies(ctx, c)
}

// legacyGuardrailBindings bound the guardrail policies to a ConfigMap in
// each key's own namespace, which that namespace's editors could delete or
// write (config/policies/guardrails.yaml). Applying the manifests does not
// remove objects they no longer contain, so a dev cluster kept from an
// earlier version would still have them.
var legacyGuardrailBindings = []client.Object{
	&admissionregistrationv1.MutatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "apikey-guardrail-defaults.gateway.codevector.io"}},
	&admissionregistrationv1.ValidatingAdmissionPolicyBinding{ObjectMeta: metav1.ObjectMeta{Name: "apikey-guardrails.gateway.codevector.io"}},
}

func deleteLegacyGuardrailBindings(ctx context.Context, c client.Client) error {
	for _, b := range legacyGuardrailBindings {
		if err := c.Delete(ctx, b); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting the old guardrail binding %s: %w", b.GetName(), err)
		}
	}
	return nil
}

// CreateNamespace creates a namespace; one that exists is fine.
func CreateNamespace(ctx context.Context, c client.Client, name string) error {
	err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// ApplyYAML server-side applies every object of a multi-document YAML
// stream, taking ownership of fields another manager set (these objects
// are ours). source names the stream in errors.
func ApplyYAML(ctx context.Context, c client.Client, data []byte, source string) error {
	objs, err := DecodeYAML(data)
	if err != nil {
		return fmt.Errorf("decoding %s: %w", source, err)
	}
	for _, u := range objs {
		if err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return fmt.Errorf("applying %s %s from %s: %w", u.GetKind(), u.GetName(), source, err)
		}
	}
	return nil
}

// DecodeYAML splits a multi-document YAML stream into objects, skipping
// empty documents.
func DecodeYAML(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(u.Object) != 0 {
			out = append(out, u)
		}
	}
}

// waitForAPIKeysServed waits until discovery lists the apikeys resource:
// only then do clients (and their REST mappers) find it.
func waitForAPIKeysServed(ctx context.Context, cfg *rest.Config) error {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	gv := gatewayv1alpha1.GroupVersion.String()
	return poll(ctx, 30*time.Second, func() error {
		list, err := dc.ServerResourcesForGroupVersion(gv)
		if err != nil {
			return fmt.Errorf("the API server does not serve %s yet: %w", gv, err)
		}
		for _, r := range list.APIResources {
			if r.Name == "apikeys" {
				return nil
			}
		}
		return fmt.Errorf("the API server does not serve apikeys.%s yet", gv)
	})
}

// WaitForPolicies dry-runs APIKey creations until the owner is defaulted
// and a foreign owner is rejected: the API server enforces a new policy
// only a second or two after it is created, so a fixed sleep would be
// either too short or wasted time.
func WaitForPolicies(ctx context.Context, c client.Client) error {
	probe := func(owner string) (*gatewayv1alpha1.APIKey, error) {
		k := &gatewayv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, GenerateName: "policy-probe-"},
			Spec:       gatewayv1alpha1.APIKeySpec{Owner: owner},
		}
		return k, c.Create(ctx, k, client.DryRunAll)
	}
	return poll(ctx, 30*time.Second, func() error {
		defaulted, err1 := probe("")
		_, err2 := probe("policy-probe-nobody")
		if err1 == nil && defaulted.Spec.Owner != "" && defaulted.Annotations[gatewayv1alpha1.AnnotationCreatedBy] != "" && apierrors.IsForbidden(err2) {
			return nil
		}
		return fmt.Errorf("admission policies not in force (defaulting: owner=%q err=%v; validation: %v)", defaulted.Spec.Owner, err1, err2)
	})
}

// poll runs cond every 200ms until it returns nil, and returns its last
// error when timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() error) error {
	var last error
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(context.Context) (bool, error) {
		last = cond()
		return last == nil, nil
	})
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case last != nil:
		return fmt.Errorf("after %v: %w", timeout, last)
	default:
		return err
	}
}
