package controllers_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// The manager caches APIKeys without annotations and managed fields
// (internal/manager), so that large annotations cost it nothing. Its
// writes are merge patches computed against that cached copy: none of them
// may touch the annotations it does not see. The user's annotations must
// come through issue (finalizer and status patches), a change made while
// the key is live, revocation and deletion (the finalizer's removal).
func TestUserAnnotationsSurviveTheController(t *testing.T) {
	ctx := context.Background()
	mgr, _ := testenv.RunManager(t, env.Config, manager.Options{})
	ns := env.Namespace(t)

	want := map[string]string{
		"team.example.com/notes":           strings.Repeat("x", 100<<10), // 100 KiB
		corev1.LastAppliedConfigAnnotation: `{"apiVersion":"gateway.codevector.io/v1alpha1","kind":"APIKey","metadata":{"name":"annotated","namespace":"` + ns + `"}}`,
	}
	create(t, newKey(ns, "annotated", func(k *gatewayv1alpha1.APIKey) { k.Annotations = maps.Clone(want) }))
	k := env.WaitForPhase(t, ns, "annotated", gatewayv1alpha1.PhaseActive, 15*time.Second)
	// Admission stamps who created the key (config/policies); the
	// controller must keep that one too.
	if k.Annotations[gatewayv1alpha1.AnnotationCreatedBy] == "" {
		t.Fatalf("no %s annotation: admission did not record the creator", gatewayv1alpha1.AnnotationCreatedBy)
	}
	want[gatewayv1alpha1.AnnotationCreatedBy] = k.Annotations[gatewayv1alpha1.AnnotationCreatedBy]
	if !controllerutil.ContainsFinalizer(k, gatewayv1alpha1.Finalizer) {
		t.Fatal("an Active key without the finalizer: the finalizer patch this test is about did not happen")
	}
	assertAnnotations(t, k, want, "after issue (finalizer and status patches)")

	// The cache holds the key, Active, but not its annotations nor its
	// managed fields.
	testenv.Eventually(t, 5*time.Second, func() error {
		cached := &gatewayv1alpha1.APIKey{}
		if err := mgr.GetClient().Get(ctx, types.NamespacedName{Namespace: ns, Name: "annotated"}, cached); err != nil {
			return err
		}
		if cached.Status.Phase != gatewayv1alpha1.PhaseActive {
			return fmt.Errorf("the cached copy is %q", cached.Status.Phase)
		}
		if len(cached.Annotations) != 0 || len(cached.ManagedFields) != 0 {
			return fmt.Errorf("the manager's cache holds %d annotations (%d bytes) and %d managed fields entries of the key, want none",
				len(cached.Annotations), annotationBytes(cached.Annotations), len(cached.ManagedFields))
		}
		return nil
	})

	// A change the user makes later, then revocation (spec and status
	// patches), then deletion (the finalizer's removal patch).
	k.Annotations["team.example.com/rotated-by"] = "alice"
	want["team.example.com/rotated-by"] = "alice"
	if err := env.Client.Update(ctx, k); err != nil {
		t.Fatal(err)
	}
	k = get(t, ns, "annotated")
	if err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true }); err != nil {
		t.Fatal(err)
	}
	k = env.WaitForPhase(t, ns, "annotated", gatewayv1alpha1.PhaseRevoked, 15*time.Second)
	assertAnnotations(t, k, want, "after revocation")

	if err := env.Client.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "annotated"}, &gatewayv1alpha1.APIKey{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("the APIKey is still there (finalizer not removed?): %v", err)
	})
}

func assertAnnotations(t *testing.T, k *gatewayv1alpha1.APIKey, want map[string]string, when string) {
	t.Helper()
	if !maps.Equal(k.Annotations, want) {
		var got []string
		for name, v := range k.Annotations {
			got = append(got, fmt.Sprintf("%s (%d bytes)", name, len(v)))
		}
		t.Errorf("%s the APIKey's annotations are %v, want these %d unchanged", when, got, len(want))
	}
}

func annotationBytes(a map[string]string) int {
	n := 0
	for k, v := range a {
		n += len(k) + len(v)
	}
	return n
}
