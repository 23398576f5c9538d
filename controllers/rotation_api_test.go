package controllers_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// Only the owner may ask for a rotation (the new key is sealed to the
// public key it carries), and a rotation only moves forward.
func TestRotationRequestsAreTheOwners(t *testing.T) {
	ctx := context.Background()
	ns, alice, carol := teamNamespace(t)
	k := newKey(ns, "rotating", func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "alice@example.com"; k.Spec.RevealPublicKey = "" })
	if err := alice.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	rotate := func(c client.Client, at time.Time) error {
		next := k.DeepCopy()
		base := next.DeepCopy()
		next.Spec.Rotation = &gatewayv1alpha1.Rotation{RequestedAt: metav1.NewTime(at), RevealPublicKey: testenv.RevealKey().PublicKey()}
		err := c.Patch(ctx, next, client.MergeFrom(base))
		if err == nil {
			k = next
		}
		return err
	}
	now := time.Now().Truncate(time.Second)
	if err := rotate(carol, now); err == nil || !strings.Contains(err.Error(), "only the key's owner (alice@example.com) can rotate") {
		t.Errorf("an admin rotating alice's key: %v", err)
	}
	if err := rotate(alice, now); err != nil {
		t.Fatalf("alice rotating her key: %v", err)
	}
	if k.Spec.Rotation.GracePeriod != nil {
		t.Logf("grace period defaulted to %v", k.Spec.Rotation.GracePeriod)
	}
	if err := rotate(alice, now.Add(-time.Hour)); err == nil || !strings.Contains(err.Error(), "only replaced by one with a later requestedAt") {
		t.Errorf("a rotation back in time: %v", err)
	}
	if err := rotate(alice, now.Add(time.Minute)); err != nil {
		t.Errorf("a second, later rotation: %v", err)
	}
	removed := k.DeepCopy()
	base := removed.DeepCopy()
	removed.Spec.Rotation = nil
	if err := alice.Patch(ctx, removed, client.MergeFrom(base)); err == nil {
		t.Error("spec.rotation was removed")
	}
}
