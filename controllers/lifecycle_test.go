package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

func TestCreateIssuesHashedKeyAndDeleteCleansUp(t *testing.T) {
	// Default argon2 parameters: this is the test that the hash at rest is
	// what docs/design.md, section 4 promises.
	env.StartManager(t, manager.Options{Argon2: keys.DefaultParams})
	ns := env.Namespace(t)
	create(t, newKey(ns, "laptop", func(k *gatewayv1alpha1.APIKey) { k.Spec.DisplayName = "Alice's laptop" }))

	k := env.WaitForPhase(t, ns, "laptop", gatewayv1alpha1.PhaseActive, 10*time.Second)
	plain := revealedKey(t, k)
	if k.Status.Prefix != plain.DisplayPrefix() || !strings.HasPrefix(plain.Reveal(), k.Status.Prefix) {
		t.Errorf("status.prefix = %q, but the revealed key starts %q", k.Status.Prefix, plain.DisplayPrefix())
	}
	if len(k.Status.Prefix) != keys.DisplayPrefixLength {
		t.Errorf("prefix %q has %d characters, want %d", k.Status.Prefix, len(k.Status.Prefix), keys.DisplayPrefixLength)
	}
	if c := findCondition(k, gatewayv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != k.Generation {
		t.Errorf("Ready condition = %+v, want True for generation %d", c, k.Generation)
	}
	if k.Status.Reveal == nil || k.Status.Reveal.State != gatewayv1alpha1.RevealPending || k.Status.Reveal.ExpiresAt == nil {
		t.Errorf("status.reveal = %+v, want Pending with an expiry", k.Status.Reveal)
	}

	reveal, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName("laptop"))
	if reveal.Type != gatewayv1alpha1.RevealSecretType {
		t.Errorf("reveal Secret type = %q", reveal.Type)
	}
	if !metav1.IsControlledBy(reveal, k) {
		t.Errorf("reveal Secret owner references = %+v, want the APIKey %s as controller", reveal.OwnerReferences, k.UID)
	}

	hash, ok := hashSecretOf(t, k)
	if !ok {
		t.Fatalf("hash Secret %s missing from the system namespace", gatewayv1alpha1.HashSecretName(string(k.UID)))
	}
	if ref := k.Status.HashSecretRef; ref == nil || ref.Name != hash.Name || ref.Namespace != gatewayv1alpha1.DefaultSystemNamespace {
		t.Errorf("status.hashSecretRef = %+v, want %s/%s", ref, gatewayv1alpha1.DefaultSystemNamespace, hash.Name)
	}
	if hash.Type != gatewayv1alpha1.HashSecretType || hash.Immutable == nil || !*hash.Immutable {
		t.Errorf("hash Secret type %q immutable %v, want %q and true", hash.Type, hash.Immutable, gatewayv1alpha1.HashSecretType)
	}
	if got := hash.Labels[gatewayv1alpha1.LabelKeyID]; got != plain.ID() {
		t.Errorf("hash Secret key-id label = %q, want %q", got, plain.ID())
	}
	phc := string(hash.Data[gatewayv1alpha1.HashSecretKey])
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash = %q, want an argon2id PHC string with m=19456,t=2,p=1", phc)
	}
	if strings.Contains(phc, plain.Reveal()) || strings.Contains(string(hash.Data[gatewayv1alpha1.HashSecretKey]), plain.Reveal()[keys.DisplayPrefixLength:]) {
		t.Error("hash Secret contains the key in plaintext")
	}
	if ok, err := keys.Verify(plain, phc); err != nil || !ok {
		t.Errorf("hash does not verify the revealed key: ok=%v err=%v", ok, err)
	}
	// The quick check beside it passes the key (gateways use it to turn
	// away wrong secrets before argon2).
	if parsed, err := keys.ParsePHC(phc); err == nil {
		want := keys.FormatQuickCheck(keys.QuickCheck(plain, parsed.Salt))
		if got := string(hash.Data[gatewayv1alpha1.HashSecretQuickCheckKey]); got != want {
			t.Errorf("quick check = %q, want %q", got, want)
		}
	}
	// A one-character change of the secret part (with a recomputed,
	// valid checksum it would still have to fail the hash).
	for _, i := range []int{keys.DisplayPrefixLength, keys.Length - keys.ChecksumLength - 1} {
		changed := mutateOneChar(plain.Reveal(), i)
		if other, err := keys.Parse(changed); err == nil {
			if ok, _ := keys.Verify(other, phc); ok {
				t.Errorf("hash verifies a key that differs at position %d", i)
			}
		}
	}

	// Deleting the APIKey removes its hash Secret through the finalizer.
	if err := env.Client.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	waitForSecretGone(t, hash.Namespace, hash.Name)
	testenv.Eventually(t, 10*time.Second, func() error {
		err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "laptop"}, &gatewayv1alpha1.APIKey{})
		if err == nil {
			return fmt.Errorf("APIKey still exists")
		}
		return nil
	})
}

// A key with a TTL expires at creation + TTL: once its clock reaches that
// time the controller, woken by the requeue it scheduled for the expiry,
// marks the key Expired and deletes its Secrets; not before. The test
// moves the manager's fake clock to the expiry instead of waiting it out.
func TestTTLExpiry(t *testing.T) {
	clk := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: clk})
	ns := env.Namespace(t)
	// Long enough to see the key Active first; short enough that moving
	// the clock to its expiry crosses no deadline of the keys that earlier
	// tests left in the cluster (their 10-minute reveal windows), which the
	// manager would otherwise work through first.
	const ttl = time.Minute
	create(t, newKey(ns, "short", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: ttl} }))
	k := env.WaitForPhase(t, ns, "short", gatewayv1alpha1.PhaseActive, 10*time.Second)
	// The expiry is the API server's creationTimestamp plus the TTL.
	if k.Status.ExpiresAt == nil || !k.Status.ExpiresAt.Equal(&metav1.Time{Time: k.CreationTimestamp.Add(ttl)}) {
		t.Fatalf("status.expiresAt = %v, want creation + %v (%v)", k.Status.ExpiresAt, ttl, k.CreationTimestamp.Add(ttl))
	}
	hashName := gatewayv1alpha1.HashSecretName(string(k.UID))

	expiresAt := k.Status.ExpiresAt.Time
	testenv.AdvanceUntil(t, clk, expiresAt, 10*time.Second, func() error {
		if k = get(t, ns, "short"); k.Status.Phase != gatewayv1alpha1.PhaseExpired {
			return fmt.Errorf("phase %s, want Expired", k.Status.Phase)
		}
		return nil
	})
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, hashName)
	waitForSecretGone(t, ns, gatewayv1alpha1.RevealSecretName("short"))
	if c := findCondition(k, gatewayv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionFalse || c.Reason != "Expired" {
		t.Errorf("Ready condition = %+v, want False/Expired", c)
	} else if c.LastTransitionTime.Time.Before(expiresAt) {
		t.Errorf("Ready became False at %v by the manager's clock, before the expiry %v", c.LastTransitionTime, expiresAt)
	}
}

// An expiresAt already in the past at creation is accepted by the API
// server (CRD validation has no clock) and the key is Expired at once:
// no key is ever generated, so nothing can leak for it.
func TestExpiresAtInThePastIsExpiredWithoutAKey(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	past := metav1.NewTime(time.Now().Add(-time.Hour))
	create(t, newKey(ns, "stale", func(k *gatewayv1alpha1.APIKey) { k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(past.Time) }))
	k := env.WaitForPhase(t, ns, "stale", gatewayv1alpha1.PhaseExpired, 10*time.Second)
	if k.Status.Prefix != "" {
		t.Errorf("an expired-at-birth key got a prefix %q", k.Status.Prefix)
	}
	if _, ok := secret(t, ns, gatewayv1alpha1.RevealSecretName("stale")); ok {
		t.Error("an expired-at-birth key got a reveal Secret")
	}
	if _, ok := hashSecretOf(t, k); ok {
		t.Error("an expired-at-birth key got a hash Secret")
	}
}

func TestRevokeIsImmediateAndFinal(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	create(t, newKey(ns, "ci"))
	k := env.WaitForPhase(t, ns, "ci", gatewayv1alpha1.PhaseActive, 10*time.Second)
	hashName := gatewayv1alpha1.HashSecretName(string(k.UID))

	if err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true }); err != nil {
		t.Fatal(err)
	}
	k = env.WaitForPhase(t, ns, "ci", gatewayv1alpha1.PhaseRevoked, 10*time.Second)
	if k.Status.RevokedAt == nil {
		t.Error("status.revokedAt not set")
	}
	if k.Status.Reveal == nil || k.Status.Reveal.State != gatewayv1alpha1.RevealExpired {
		t.Errorf("status.reveal = %+v, want state Expired (the unread reveal was withdrawn)", k.Status.Reveal)
	}
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, hashName)
	waitForSecretGone(t, ns, gatewayv1alpha1.RevealSecretName("ci"))

	err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = false })
	if err == nil || !strings.Contains(err.Error(), "revocation cannot be undone") {
		t.Fatalf("un-revoking: err = %v, want the API server to refuse with \"revocation cannot be undone\"", err)
	}
	if !isInvalid(err) {
		t.Errorf("un-revoking: error %v is not an Invalid error", err)
	}
}

func TestSpecRulesEnforcedByAPIServer(t *testing.T) {
	ns := env.Namespace(t)
	future := metav1.NewTime(time.Now().Add(time.Hour))
	later := metav1.NewTime(time.Now().Add(2 * time.Hour))

	err := env.Client.Create(context.Background(), newKey(ns, "both", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(future.Time)
		k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Hour}
	}))
	if err == nil || !strings.Contains(err.Error(), "either expiresAt or ttl") {
		t.Errorf("expiresAt and ttl together: err = %v", err)
	}

	k := create(t, newKey(ns, "fixed", func(k *gatewayv1alpha1.APIKey) { k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(future.Time) }))
	for name, mutate := range map[string]func(*gatewayv1alpha1.APIKey){
		"change expiresAt": func(k *gatewayv1alpha1.APIKey) { k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(later.Time) },
		"remove expiresAt": func(k *gatewayv1alpha1.APIKey) { k.Spec.ExpiresAt = nil },
		"change owner":     func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "mallory" },
	} {
		fresh := get(t, ns, k.Name)
		if err := patchSpec(t, fresh, mutate); err == nil || !strings.Contains(err.Error(), "immutable") {
			t.Errorf("%s: err = %v, want an immutability error", name, err)
		}
	}

	noTTL := create(t, newKey(ns, "no-ttl"))
	if err := patchSpec(t, noTTL, func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Hour} }); err == nil || !strings.Contains(err.Error(), "ttl is immutable") {
		t.Errorf("adding ttl later: err = %v, want \"ttl is immutable\"", err)
	}
}

func findCondition(k *gatewayv1alpha1.APIKey, typ string) *metav1.Condition {
	for i := range k.Status.Conditions {
		if k.Status.Conditions[i].Type == typ {
			return &k.Status.Conditions[i]
		}
	}
	return nil
}
