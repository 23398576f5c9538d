package keyindex

import (
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// apiKeyAt is the APIKey of facts(uid) at resource version rv.
func apiKeyAt(uid string, rv int) *gatewayv1alpha1.APIKey {
	return &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "laptop", UID: types.UID(uid), ResourceVersion: strconv.Itoa(rv)},
		Spec:       gatewayv1alpha1.APIKeySpec{Owner: "alice"},
		Status:     gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, Prefix: "cvk_ABCDEFGH"},
	}
}

// rotatedAt is apiKeyAt after a rotation to NEWKEY12 whose grace ends at
// graceEnds.
func rotatedAt(rv int, graceEnds time.Time) *gatewayv1alpha1.APIKey {
	k := apiKeyAt("uid-1", rv)
	k.Status.Prefix = "cvk_NEWKEY12"
	k.Status.Previous = &gatewayv1alpha1.PreviousKey{Prefix: "cvk_ABCDEFGH", ExpiresAt: metav1.NewTime(graceEnds)}
	return k
}

// A watch that delivers a rotation or a policy change relays the APIKey;
// one that delivers a last-use write does not.
func TestWatchedChangesToWhatAKeyMayDoAreRelayed(t *testing.T) {
	ix := New(nil)
	var relayed []*gatewayv1alpha1.APIKey
	ix.OnAPIKeyChange(func(k *gatewayv1alpha1.APIKey) { relayed = append(relayed, k) })
	s := &apiKeyStore{store: store{ix: ix}}
	k := apiKeyAt("uid-1", 10)
	k.Labels = map[string]string{"team": "a"}
	if err := s.Update(k); err != nil {
		t.Fatal(err)
	}
	used := apiKeyAt("uid-1", 11)
	used.Status.LastUsedAt = ptr.To(metav1.Now())
	if err := s.Update(used); err != nil {
		t.Fatal(err)
	}
	if len(relayed) != 0 {
		t.Fatalf("a new key and a last-use write were relayed: %+v", relayed)
	}

	rot := rotatedAt(12, time.Now())
	rot.Labels = map[string]string{"team": "a"}
	if err := s.Update(rot); err != nil {
		t.Fatal(err)
	}
	limited := rotatedAt(13, time.Now())
	limited.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](2)}
	if err := s.Update(limited); err != nil {
		t.Fatal(err)
	}
	if len(relayed) != 2 || relayed[0].ResourceVersion != "12" || relayed[1].ResourceVersion != "13" {
		t.Fatalf("relayed %d changes, want the rotation (12) and the limit (13): %+v", len(relayed), relayed)
	}
	if relayed[0].Labels != nil || relayed[0].Status.Previous == nil || relayed[1].Spec.Limits == nil {
		t.Errorf("relayed APIKeys are not what the index reads: %+v", relayed)
	}
}

// A peer's relayed rotation ends the replaced secret's grace on a replica
// that has not heard of it, and no older watch event undoes it; a relay of
// another incarnation, or one the watch has passed, changes nothing.
func TestRelayedRotationHoldsAgainstOlderEvents(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	ix.SetAPIKey(APIKeyFactsOf(apiKeyAt("uid-1", 10)))
	ix.SetHash(hashFor("uid-1", "secret-1"))
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != "" {
		t.Fatalf("before: %q", r)
	}

	other := rotatedAt(20, now)
	other.UID = "uid-2" // the key deleted and created anew
	if ix.ApplyRelayed(other) {
		t.Error("a relayed change of another incarnation was applied")
	}
	if !ix.ApplyRelayed(rotatedAt(20, now)) {
		t.Fatal("ApplyRelayed applied nothing")
	}
	if e := ix.Lookup("ABCDEFGH"); !e.Previous || e.Usable(now) != ReasonExpired {
		t.Fatalf("after the relay the replaced secret is served: previous %v, Usable %q", e.Previous, e.Usable(now))
	}
	if ix.ApplyRelayed(rotatedAt(20, now)) || ix.ApplyRelayed(rotatedAt(15, now.Add(time.Hour))) {
		t.Error("a relay at or before the version held was applied")
	}

	// The stalled watch catches up with a change older than the relay (a
	// last-use write at 15): the rotation holds.
	s := &apiKeyStore{store: store{ix: ix}}
	if err := s.Update(apiKeyAt("uid-1", 15)); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ABCDEFGH"); !e.Previous || e.Usable(now) != ReasonExpired {
		t.Fatalf("an older watch event undid the relayed rotation: previous %v, Usable %q", e.Previous, e.Usable(now))
	}
	// A newer one replaces it.
	if err := s.Update(apiKeyAt("uid-1", 30)); err != nil {
		t.Fatal(err)
	}
	if a := ix.APIKey(types.NamespacedName{Namespace: "team", Name: "laptop"}); a.ResourceVersion != 30 {
		t.Fatalf("the watch's newer event was not applied: at %d", a.ResourceVersion)
	}
}
