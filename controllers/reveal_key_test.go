package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// Issue 25, item 5: once a key's reveal is over the manager removes the
// public key it was sealed to (1.6 KB that kubectl describe printed for
// the key's life) and status keeps its fingerprint; until then nobody can
// remove it, and once a key was issued nobody can set one again.
func TestRevealPublicKeyGoesOnceTheRevealIsOver(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	ctx := context.Background()
	k := create(t, newKey(ns, "laptop"))
	public := k.Spec.RevealPublicKey
	k = env.WaitForPhase(t, ns, "laptop", gatewayv1alpha1.PhaseActive, 15*time.Second)
	if got, want := k.Status.Reveal.PublicKeyFingerprint, gatewayv1alpha1.RevealKeyFingerprint(public); got != want || !strings.HasPrefix(got, "SHA256:") {
		t.Errorf("status.reveal.publicKeyFingerprint = %q, want %q", got, want)
	}
	// While the reveal is pending the public key stays, whoever asks.
	if err := patchSpec(t, k.DeepCopy(), func(k *gatewayv1alpha1.APIKey) { k.Spec.RevealPublicKey = "" }); err == nil ||
		!strings.Contains(err.Error(), "can be removed only once the key sealed to it has been revealed") {
		t.Errorf("removing the public key of a pending reveal: %v", err)
	}
	if _, err := testenv.Reveal(ctx, env.Client, k); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		k = get(t, ns, "laptop")
		if k.Spec.RevealPublicKey != "" || k.Status.Reveal == nil || k.Status.Reveal.State != gatewayv1alpha1.RevealConsumed {
			return fmt.Errorf("after the reveal: spec.revealPublicKey of %d bytes, status.reveal %+v", len(k.Spec.RevealPublicKey), k.Status.Reveal)
		}
		return nil
	})
	if k.Status.Reveal.PublicKeyFingerprint != gatewayv1alpha1.RevealKeyFingerprint(public) {
		t.Errorf("the fingerprint went with the public key: %+v", k.Status.Reveal)
	}
	// Set again (a re-applied manifest, a second reveal request): refused,
	// with what to do instead.
	again := k.DeepCopy()
	again.Spec.RevealPublicKey = public
	if err := env.Client.Patch(ctx, again, client.MergeFrom(k)); err == nil || !strings.Contains(err.Error(), "cannot be set again") || !strings.Contains(err.Error(), "rotate the key") {
		t.Errorf("setting the public key again: %v", err)
	}
	if _, err := testenv.Reveal(ctx, env.Client, get(t, ns, "laptop")); err == nil {
		t.Error("a second reveal succeeded")
	}
}
