package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// requestRotation sets spec.rotation as `kubectl apikey rotate --grace`
// does (as the key's owner: the tests' admin user created it).
func requestRotation(t *testing.T, k *gatewayv1alpha1.APIKey, at time.Time, grace *time.Duration) {
	t.Helper()
	rot := &gatewayv1alpha1.Rotation{RequestedAt: metav1.NewTime(at.Truncate(time.Second)), RevealPublicKey: testenv.RevealKey().PublicKey()}
	if grace != nil {
		rot.GracePeriod = &metav1.Duration{Duration: *grace}
	}
	if err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Rotation = rot }); err != nil {
		t.Fatalf("requesting a rotation: %v", err)
	}
}

// waitRotated waits for the rotation requested at k.Spec.Rotation to be
// carried out and returns the APIKey then.
func waitRotated(t *testing.T, k *gatewayv1alpha1.APIKey) *gatewayv1alpha1.APIKey {
	t.Helper()
	var got *gatewayv1alpha1.APIKey
	testenv.Eventually(t, 10*time.Second, func() error {
		got = get(t, k.Namespace, k.Name)
		if got.Status.RotatedAt == nil || !got.Status.RotatedAt.Equal(&k.Spec.Rotation.RequestedAt) {
			return fmt.Errorf("status.rotatedAt = %v, want %v", got.Status.RotatedAt, k.Spec.Rotation.RequestedAt)
		}
		return nil
	})
	return got
}

// hashSecretsOf lists the hash Secrets of k's UID, by key ID.
func hashSecretsOf(t *testing.T, k *gatewayv1alpha1.APIKey) map[string]corev1.Secret {
	t.Helper()
	var list corev1.SecretList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(gatewayv1alpha1.DefaultSystemNamespace),
		client.MatchingLabels{gatewayv1alpha1.LabelAPIKeyUID: string(k.UID)}); err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.Secret{}
	for _, s := range list.Items {
		out[s.Labels[gatewayv1alpha1.LabelKeyID]] = s
	}
	return out
}

func verifies(s corev1.Secret, k keys.Key) bool {
	ok, _ := keys.Verify(k, string(s.Data[gatewayv1alpha1.HashSecretKey]))
	return ok
}

func eventsOf(t *testing.T, k *gatewayv1alpha1.APIKey, reason string) []eventsv1.Event {
	t.Helper()
	var evs eventsv1.EventList
	if err := env.Client.List(context.Background(), &evs, client.InNamespace(k.Namespace)); err != nil {
		t.Fatal(err)
	}
	var out []eventsv1.Event
	for _, e := range evs.Items {
		if e.Reason == reason && e.Regarding.Name == k.Name && e.Regarding.UID == k.UID {
			out = append(out, e)
		}
	}
	return out
}

// A rotation gives the same APIKey (same name, same UID) a new key,
// revealed once like the first, and keeps the old key's hash until the
// grace period ends on the manager's clock; then only the new one is left.
func TestRotationWithGracePeriod(t *testing.T) {
	clk := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: clk})
	ns := env.Namespace(t)
	create(t, newKey(ns, "rotating"))
	k := env.WaitForPhase(t, ns, "rotating", gatewayv1alpha1.PhaseActive, 10*time.Second)
	oldKey, err := testenv.Reveal(context.Background(), env.Client, k)
	if err != nil {
		t.Fatal(err)
	}
	oldHash, ok := hashSecretOf(t, k)
	if !ok {
		t.Fatal("no hash Secret")
	}

	grace := time.Minute
	requestRotation(t, k, time.Now(), &grace)
	requestedAt := clk.Now()
	rotated := waitRotated(t, k)
	if rotated.UID != k.UID || rotated.Status.Phase != gatewayv1alpha1.PhaseActive {
		t.Fatalf("after rotation: UID %s (was %s), phase %s", rotated.UID, k.UID, rotated.Status.Phase)
	}
	newKey := revealedKey(t, rotated)
	if newKey.ID() == oldKey.ID() || rotated.Status.Prefix != newKey.DisplayPrefix() {
		t.Fatalf("status.prefix %s, revealed %s, old %s: want a new key", rotated.Status.Prefix, newKey.DisplayPrefix(), oldKey.DisplayPrefix())
	}
	if r := rotated.Status.Reveal; r == nil || r.State != gatewayv1alpha1.RevealPending {
		t.Errorf("status.reveal = %+v, want Pending", r)
	}
	p := rotated.Status.Previous
	if p == nil || p.Prefix != oldKey.DisplayPrefix() || p.HashSecretRef == nil || p.HashSecretRef.Name != oldHash.Name {
		t.Fatalf("status.previous = %+v, want the old key %s and its hash Secret %s", p, oldKey.DisplayPrefix(), oldHash.Name)
	}
	if p.ExpiresAt.Time.Before(requestedAt.Add(grace).Add(-time.Second)) || p.ExpiresAt.Time.After(clk.Now().Add(grace)) {
		t.Errorf("previous.expiresAt = %v, want the rotation time + %v (%v)", p.ExpiresAt, grace, requestedAt.Add(grace))
	}
	hashes := hashSecretsOf(t, rotated)
	if len(hashes) != 2 {
		t.Fatalf("%d hash Secrets during the grace period, want 2", len(hashes))
	}
	if h := hashes[oldKey.ID()]; h.UID != oldHash.UID || !verifies(h, oldKey) {
		t.Error("the old key's hash Secret changed during the grace period")
	}
	if h := hashes[newKey.ID()]; h.Name != rotated.Status.HashSecretRef.Name || !verifies(h, newKey) || verifies(h, oldKey) {
		t.Errorf("the new hash Secret %s (status names %s) does not verify exactly the new key", h.Name, rotated.Status.HashSecretRef.Name)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		evs := eventsOf(t, rotated, "Rotated")
		if len(evs) != 1 {
			return fmt.Errorf("%d Rotated events, want 1", len(evs))
		}
		note := evs[0].Note
		if !strings.Contains(note, oldKey.DisplayPrefix()) || !strings.Contains(note, newKey.DisplayPrefix()) || strings.Contains(note, newKey.Reveal()) {
			return fmt.Errorf("rotated event %q should name both prefixes and no key", note)
		}
		return nil
	})

	testenv.AdvanceUntil(t, clk, p.ExpiresAt.Time, 10*time.Second, func() error {
		if got := get(t, ns, "rotating"); got.Status.Previous != nil {
			return fmt.Errorf("status.previous still %+v", got.Status.Previous)
		}
		return nil
	})
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, oldHash.Name)
	after := get(t, ns, "rotating")
	if after.Status.Phase != gatewayv1alpha1.PhaseActive || after.Status.Prefix != newKey.DisplayPrefix() {
		t.Errorf("after the grace period: %s %s, want Active %s", after.Status.Phase, after.Status.Prefix, newKey.DisplayPrefix())
	}
	if hashes := hashSecretsOf(t, after); len(hashes) != 1 || !verifies(hashes[newKey.ID()], newKey) {
		t.Errorf("after the grace period: hash Secrets %v, want only the new key's", len(hashes))
	}
}

// --grace 0: no previous key at all; the old hash goes at once.
func TestRotationWithoutGracePeriod(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	k, oldKey := env.IssueKey(t, ns, "no-grace")
	oldHash, _ := hashSecretOf(t, k)
	zero := time.Duration(0)
	requestRotation(t, k, time.Now(), &zero)
	rotated := waitRotated(t, k)
	if rotated.Status.Previous != nil {
		t.Errorf("status.previous = %+v after a rotation without grace period", rotated.Status.Previous)
	}
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, oldHash.Name)
	newKey := revealedKey(t, rotated)
	hashes := hashSecretsOf(t, rotated)
	if len(hashes) != 1 || !verifies(hashes[newKey.ID()], newKey) || newKey.ID() == oldKey.ID() {
		t.Errorf("hash Secrets %d, want only the new key's", len(hashes))
	}
}

// A key whose reveal was never consumed can be rotated: its reveal is
// replaced by the new key's, and the old reveal Secret is gone.
func TestRotationOfAKeyNeverRevealed(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	create(t, newKey(ns, "unrevealed"))
	k := env.WaitForPhase(t, ns, "unrevealed", gatewayv1alpha1.PhaseActive, 10*time.Second)
	unread := revealedKey(t, k)
	oldReveal, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName(k.Name))
	requestRotation(t, k, time.Now(), nil)
	rotated := waitRotated(t, k)
	r := rotated.Status.Reveal
	if r == nil || r.State != gatewayv1alpha1.RevealPending || r.SecretUID == oldReveal.UID {
		t.Fatalf("status.reveal = %+v, want a new Pending reveal (old Secret %s)", r, oldReveal.UID)
	}
	if rs, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName(k.Name)); rs.UID != r.SecretUID {
		t.Errorf("the reveal Secret is %s, status names %s", rs.UID, r.SecretUID)
	}
	revealed, err := testenv.Reveal(context.Background(), env.Client, rotated)
	if err != nil {
		t.Fatal(err)
	}
	if revealed.ID() == unread.ID() || rotated.Status.Prefix != revealed.DisplayPrefix() {
		t.Errorf("revealed %s, status %s, old %s", revealed.DisplayPrefix(), rotated.Status.Prefix, unread.DisplayPrefix())
	}
	if g := gracePeriodOf(rotated); rotated.Status.Previous == nil || g != 24*time.Hour {
		t.Errorf("default grace period: previous %+v, want 24h", rotated.Status.Previous)
	}
}

func gracePeriodOf(k *gatewayv1alpha1.APIKey) time.Duration {
	if k.Status.Previous == nil || k.Status.RotatedAt == nil {
		return 0
	}
	return k.Status.Previous.ExpiresAt.Sub(time.Now()).Round(time.Hour)
}

// Revoking or deleting an APIKey during a grace period ends both keys.
func TestRevokeOrDeleteDuringGracePeriodEndsBothKeys(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	grace := time.Hour
	for _, end := range []string{"revoke", "delete"} {
		k, _ := env.IssueKey(t, ns, end)
		requestRotation(t, k, time.Now(), &grace)
		rotated := waitRotated(t, k)
		if n := len(hashSecretsOf(t, rotated)); n != 2 {
			t.Fatalf("%s: %d hash Secrets during the grace period, want 2", end, n)
		}
		switch end {
		case "revoke":
			if err := patchSpec(t, rotated, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true }); err != nil {
				t.Fatal(err)
			}
			k = env.WaitForPhase(t, ns, end, gatewayv1alpha1.PhaseRevoked, 10*time.Second)
			if k.Status.Previous != nil {
				t.Errorf("revoked key still shows a previous key: %+v", k.Status.Previous)
			}
		case "delete":
			if err := env.Client.Delete(context.Background(), rotated); err != nil {
				t.Fatal(err)
			}
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			if n := len(hashSecretsOf(t, rotated)); n != 0 {
				return fmt.Errorf("%s: %d hash Secrets left, want 0", end, n)
			}
			return nil
		})
	}
}

// plantRotatedHash writes the hash Secret a rotation writes first, as a
// manager killed right after it leaves it.
func plantRotatedHash(t *testing.T, k *gatewayv1alpha1.APIKey, plain keys.Key) *corev1.Secret {
	t.Helper()
	return plantHashNamed(t, k, plain, gatewayv1alpha1.RotatedHashSecretName(string(k.UID), plain.ID()))
}

// A manager killed between the writes of a rotation (after the new hash,
// and after the new reveal, before status) leaves, after a restart,
// exactly one new key: the half-written one is discarded unread, and the
// old key is unchanged until its grace period ends.
func TestManagerKilledMidRotation(t *testing.T) {
	for _, killedAfter := range []string{"hash", "reveal"} {
		t.Run(killedAfter, func(t *testing.T) {
			stop := env.StartManager(t, manager.Options{})
			ns := env.Namespace(t)
			k, oldKey := env.IssueKey(t, ns, "killed-after-"+killedAfter)
			stop()
			oldHash, _ := hashSecretOf(t, k)

			grace := time.Hour
			requestRotation(t, k, time.Now(), &grace)
			k = get(t, ns, k.Name)
			lost, _ := keys.Generate()
			orphan := plantRotatedHash(t, k, lost)
			if killedAfter == "reveal" {
				// The old reveal was consumed (IssueKey); the rotation's is
				// written in its place.
				plantReveal(t, k, lost)
			}

			env.StartManager(t, manager.Options{})
			rotated := waitRotated(t, k)
			waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, orphan.Name)
			newKey := revealedKey(t, rotated)
			if newKey.ID() == lost.ID() || newKey.ID() == oldKey.ID() || rotated.Status.Prefix != newKey.DisplayPrefix() {
				t.Fatalf("status %s, revealed %s: want a fresh key, neither the old %s nor the half-written %s",
					rotated.Status.Prefix, newKey.DisplayPrefix(), oldKey.DisplayPrefix(), lost.DisplayPrefix())
			}
			hashes := hashSecretsOf(t, rotated)
			if len(hashes) != 2 {
				t.Errorf("%d hash Secrets, want the old key's and one new one", len(hashes))
			}
			if h := hashes[oldKey.ID()]; h.UID != oldHash.UID || !verifies(h, oldKey) {
				t.Error("the old key's hash Secret changed")
			}
			if h, ok := hashes[newKey.ID()]; !ok || !verifies(h, newKey) || verifies(h, lost) {
				t.Error("the new hash Secret does not verify exactly the new key")
			}
			if p := rotated.Status.Previous; p == nil || p.Prefix != oldKey.DisplayPrefix() {
				t.Errorf("status.previous = %+v, want the old key", p)
			}
		})
	}
}

// The expiry of the APIKey during a grace period ends both keys, though
// the old key's grace period runs longer.
func TestExpiryDuringGracePeriodEndsBothKeys(t *testing.T) {
	clk := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: clk})
	ns := env.Namespace(t)
	create(t, newKey(ns, "expiring", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Minute} }))
	k := env.WaitForPhase(t, ns, "expiring", gatewayv1alpha1.PhaseActive, 10*time.Second)
	grace := time.Hour
	requestRotation(t, k, time.Now(), &grace)
	rotated := waitRotated(t, k)
	if n := len(hashSecretsOf(t, rotated)); n != 2 {
		t.Fatalf("%d hash Secrets during the grace period, want 2", n)
	}
	testenv.AdvanceUntil(t, clk, rotated.Status.ExpiresAt.Time, 10*time.Second, func() error {
		if got := get(t, ns, "expiring"); got.Status.Phase != gatewayv1alpha1.PhaseExpired {
			return fmt.Errorf("phase %s", got.Status.Phase)
		}
		return nil
	})
	if p := get(t, ns, "expiring").Status.Previous; p != nil {
		t.Errorf("expired key still shows a previous key: %+v", p)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if n := len(hashSecretsOf(t, rotated)); n != 0 {
			return fmt.Errorf("%d hash Secrets left after expiry, want 0", n)
		}
		return nil
	})
}

// A rotation asked for while the key waits for its owner's public key
// (never issued) rotates nothing: the first key, issued afterwards, is
// the only one, and the rotation counts as carried out.
func TestRotationBeforeTheFirstKeyIssuesOneKey(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	create(t, newKey(ns, "waiting", unsealed))
	k := env.WaitForPhase(t, ns, "waiting", gatewayv1alpha1.PhasePending, 10*time.Second)
	requestRotation(t, k, time.Now(), nil)
	if err := patchSpec(t, k, testenv.SealToTests); err != nil {
		t.Fatal(err)
	}
	issued := waitRotated(t, k)
	if issued.Status.Phase != gatewayv1alpha1.PhaseActive || issued.Status.Previous != nil {
		t.Errorf("phase %s, previous %+v: want one Active key", issued.Status.Phase, issued.Status.Previous)
	}
	if n := len(hashSecretsOf(t, issued)); n != 1 {
		t.Errorf("%d hash Secrets, want 1", n)
	}
	if evs := eventsOf(t, issued, "Rotated"); len(evs) != 0 {
		t.Errorf("%d Rotated events for a key never issued before", len(evs))
	}
}
