package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/keys"
	"github.com/codevector/codevector/internal/operator"
	"github.com/codevector/codevector/internal/testenv"
)

// These tests build, with no manager running, the state a manager leaves
// when it dies between two writes, then start one and check the outcome.

func TestCrashAfterRevealWriteCompletesTheSameKey(t *testing.T) {
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "half-issued"))
	plain, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	rs := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gatewayv1alpha1.RevealSecretName(k.Name),
			Labels: map[string]string{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue}},
		Type: gatewayv1alpha1.RevealSecretType,
		Data: map[string][]byte{gatewayv1alpha1.RevealSecretKey: []byte(plain.Reveal())},
	}
	if err := controllerutil.SetControllerReference(k, rs, env.Client.Scheme()); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}

	env.StartManager(t, operator.Options{})
	k = env.WaitForPhase(t, ns, k.Name, gatewayv1alpha1.PhaseActive, 10*time.Second)
	if k.Status.Prefix != plain.DisplayPrefix() {
		t.Fatalf("prefix = %s, want %s: the key was regenerated instead of completed", k.Status.Prefix, plain.DisplayPrefix())
	}
	hash, ok := hashSecretOf(t, k)
	if !ok {
		t.Fatal("hash Secret was not derived from the reveal Secret")
	}
	if ok, err := keys.Verify(plain, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok || err != nil {
		t.Errorf("derived hash does not verify the revealed key: %v %v", ok, err)
	}
	if got := revealedKey(t, k); got.Reveal() != plain.Reveal() {
		t.Error("reveal Secret was replaced")
	}
}

func TestLoneHashWithoutRevealIsReplaced(t *testing.T) {
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "orphan"))
	lost, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	phc, err := keys.Hash(lost, testenv.FastArgon2)
	if err != nil {
		t.Fatal(err)
	}
	orphan := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: gatewayv1alpha1.HashSecretName(string(k.UID)),
			Labels: map[string]string{
				gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue, gatewayv1alpha1.LabelKeyID: lost.ID(),
				gatewayv1alpha1.LabelAPIKeyNamespace: ns, gatewayv1alpha1.LabelAPIKeyName: k.Name,
			}},
		Type:      gatewayv1alpha1.HashSecretType,
		Immutable: ptr.To(true),
		Data:      map[string][]byte{gatewayv1alpha1.HashSecretKey: []byte(phc)},
	}
	if err := env.Client.Create(context.Background(), orphan); err != nil {
		t.Fatal(err)
	}

	env.StartManager(t, operator.Options{})
	k = env.WaitForPhase(t, ns, k.Name, gatewayv1alpha1.PhaseActive, 10*time.Second)
	plain := revealedKey(t, k)
	if plain.ID() == lost.ID() {
		t.Fatal("the key whose plaintext was lost was kept")
	}
	hash, ok := hashSecretOf(t, k)
	if !ok {
		t.Fatal("no hash Secret after replacing the orphan")
	}
	if hash.UID == orphan.UID {
		t.Error("the orphaned hash Secret was kept")
	}
	if ok, _ := keys.Verify(plain, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok {
		t.Error("new hash does not verify the new key")
	}
	if ok, _ := keys.Verify(lost, string(hash.Data[gatewayv1alpha1.HashSecretKey])); ok {
		t.Error("new hash still verifies the lost key")
	}
}

// A hash Secret deleted by hand cannot be rebuilt without the plaintext,
// so the key is marked Failed rather than silently re-keyed.
func TestDeletedHashSecretFailsTheKey(t *testing.T) {
	env.StartManager(t, operator.Options{})
	ns := env.Namespace(t)
	create(t, newKey(ns, "tampered"))
	k := env.WaitForPhase(t, ns, "tampered", gatewayv1alpha1.PhaseActive, 10*time.Second)
	// Consume the reveal first: with the plaintext gone the hash cannot be rebuilt.
	if err := env.Client.Delete(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gatewayv1alpha1.RevealSecretName(k.Name)}}); err != nil {
		t.Fatal(err)
	}
	hash, _ := hashSecretOf(t, k)
	if err := env.Client.Delete(context.Background(), hash); err != nil {
		t.Fatal(err)
	}
	k = env.WaitForPhase(t, ns, "tampered", gatewayv1alpha1.PhaseFailed, 10*time.Second)
	if c := findCondition(k, gatewayv1alpha1.ConditionReady); c == nil || c.Reason != "HashSecretMissing" {
		t.Errorf("Ready condition = %+v, want reason HashSecretMissing", c)
	}
}
