package controllers_test

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/seal"
)

// These tests build, with no manager running, the state a manager leaves
// when it dies between two writes of an issue (hash Secret, then reveal
// Secret, then status), or that an impostor plants, then start one and
// check the outcome: one usable key, never one whose plaintext somebody
// else chose or read.

// plantReveal writes a reveal Secret for k holding plain, as an
// interrupted pass (or anyone who may create Secrets in the namespace)
// could: owned by the APIKey, sealed to the tests' public key (the one the
// key's reveal would be sealed to), and in plaintext too.
func plantReveal(t *testing.T, k *gatewayv1alpha1.APIKey, plain keys.Key) *corev1.Secret {
	t.Helper()
	sealed, err := seal.Seal(testenv.RevealKey().PublicKey(), k.UID, plain)
	if err != nil {
		t.Fatal(err)
	}
	rs := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: gatewayv1alpha1.RevealSecretName(k.Name),
			Labels: map[string]string{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue}},
		Type: gatewayv1alpha1.RevealSecretType,
		Data: map[string][]byte{gatewayv1alpha1.RevealSecretSealedKey: sealed, gatewayv1alpha1.RevealSecretPlainKey: []byte(plain.Reveal())},
	}
	if err := controllerutil.SetControllerReference(k, rs, env.Client.Scheme()); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(context.Background(), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// plantHash writes the hash Secret of k for plain, as a pass that died
// right after writing it leaves it.
func plantHash(t *testing.T, k *gatewayv1alpha1.APIKey, plain keys.Key) *corev1.Secret {
	t.Helper()
	return plantHashNamed(t, k, plain, "")
}

// plantHashNamed is plantHash under the given name ("": the first key's).
func plantHashNamed(t *testing.T, k *gatewayv1alpha1.APIKey, plain keys.Key, name string) *corev1.Secret {
	t.Helper()
	phc, err := keys.Hash(plain, testenv.FastArgon2)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := keys.ParsePHC(phc)
	if err != nil {
		t.Fatal(err)
	}
	h := controllers.NewHashSecret(gatewayv1alpha1.DefaultSystemNamespace, k, plain, parsed)
	if name != "" {
		h.Name = name
	}
	if err := env.Client.Create(context.Background(), h); err != nil {
		t.Fatal(err)
	}
	return h
}

// checkFreshKey asserts that k was issued a key of its own, neither of
// the ones left behind, with a hash that verifies it and nothing else.
func checkFreshKey(t *testing.T, k *gatewayv1alpha1.APIKey, leftBehind ...keys.Key) {
	t.Helper()
	k = env.WaitForPhase(t, k.Namespace, k.Name, gatewayv1alpha1.PhaseActive, 10*time.Second)
	plain := revealedKey(t, k)
	hash, ok := hashSecretOf(t, k)
	if !ok {
		t.Fatal("no hash Secret")
	}
	if ok, _ := keys.Verify(plain, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok {
		t.Error("the hash does not verify the revealed key")
	}
	for _, old := range leftBehind {
		if plain.ID() == old.ID() || k.Status.Prefix == old.DisplayPrefix() {
			t.Errorf("the key left behind (%s) was adopted", old.DisplayPrefix())
		}
		if ok, _ := keys.Verify(old, string(hash.Data[gatewayv1alpha1.HashSecretKey])); ok {
			t.Errorf("the hash verifies the key left behind (%s)", old.DisplayPrefix())
		}
	}
	var same corev1.SecretList
	if err := env.Client.List(context.Background(), &same, client.InNamespace(gatewayv1alpha1.DefaultSystemNamespace),
		client.MatchingLabels{gatewayv1alpha1.LabelKeyID: plain.ID()}); err != nil {
		t.Fatal(err)
	}
	if len(same.Items) != 1 {
		t.Errorf("%d hash Secrets carry key ID %s, want 1", len(same.Items), plain.ID())
	}
}

// Killed after writing the hash: nobody ever received that key, so it is
// replaced.
func TestCrashAfterHashWriteIssuesAFreshKey(t *testing.T) {
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "after-hash"))
	lost, _ := keys.Generate()
	orphan := plantHash(t, k, lost)

	env.StartManager(t, manager.Options{})
	checkFreshKey(t, k, lost)
	if h, _ := hashSecretOf(t, k); h.UID == orphan.UID {
		t.Error("the hash Secret of the interrupted issue was kept")
	}
}

// Killed after writing the hash and the reveal, before status: the reveal
// was never handed to a reader (they wait for Active), so both go.
func TestCrashAfterRevealWriteIssuesAFreshKey(t *testing.T) {
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "after-reveal"))
	lost, _ := keys.Generate()
	plantHash(t, k, lost)
	planted := plantReveal(t, k, lost)

	env.StartManager(t, manager.Options{})
	checkFreshKey(t, k, lost)
	if rs, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName(k.Name)); rs.UID == planted.UID {
		t.Error("the reveal Secret of the interrupted issue was kept")
	}
}

// A reveal Secret of ours without its hash Secret (deleted by hand), on a
// key whose finalizer is not on yet: the first pass, which does not look
// for leftovers, finds it in its way and leaves it to the pass after,
// which discards it like any other; the key is revealed under its usual
// name, never from the Secret left behind.
func TestRevealLeftWithoutItsHashIsDiscarded(t *testing.T) {
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "reveal-only"))
	lost, _ := keys.Generate()
	planted := plantReveal(t, k, lost)

	env.StartManager(t, manager.Options{})
	checkFreshKey(t, k, lost)
	if rs, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName(k.Name)); rs.UID == planted.UID {
		t.Error("the reveal Secret left behind was kept")
	}
}

// A reveal Secret planted before issuance, holding a key whose ID is
// another user's (prefixes are visible to viewers), changes nothing: the
// controller never reads key material from a tenant namespace.
func TestPlantedRevealBeforeIssueIsNeverAdopted(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	victim, victimKey := env.IssueKey(t, ns, "victim")

	mallory := create(t, newKey(ns, "mallory", unsealed))
	env.WaitForPhase(t, ns, "mallory", gatewayv1alpha1.PhasePending, 10*time.Second)
	chosen, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	chosen, err = keys.WithID(chosen, victimKey.ID())
	if err != nil {
		t.Fatal(err)
	}
	plantReveal(t, mallory, chosen)
	// Mallory's key is then revealed (sealed to the tests' key: mallory is
	// the admin user here, and its owner).
	if err := patchSpec(t, mallory, testenv.SealToTests); err != nil {
		t.Fatal(err)
	}
	checkFreshKey(t, mallory, chosen)

	// The victim's key is untouched.
	victim = get(t, ns, victim.Name)
	if victim.Status.Phase != gatewayv1alpha1.PhaseActive || victim.Status.Prefix != victimKey.DisplayPrefix() {
		t.Errorf("victim is %s with prefix %s, want Active with %s", victim.Status.Phase, victim.Status.Prefix, victimKey.DisplayPrefix())
	}
	hash, _ := hashSecretOf(t, victim)
	if ok, _ := keys.Verify(victimKey, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok {
		t.Error("the victim's hash no longer verifies the victim's key")
	}
}

// A hash Secret deleted by hand cannot be rebuilt without the plaintext,
// so the key is marked Failed rather than silently re-keyed.
func TestDeletedHashSecretFailsTheKey(t *testing.T) {
	env.StartManager(t, manager.Options{})
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
