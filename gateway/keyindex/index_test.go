package keyindex

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

func facts(uid string) APIKeyFacts {
	return APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: types.UID(uid), KeyID: "ABCDEFGH",
		Owner: "alice", Prefix: "cvk_ABCDEFGH", Phase: gatewayv1alpha1.PhaseActive}
}

func hashFor(uid, secretUID string) HashFacts {
	return HashFacts{SecretUID: types.UID(secretUID), KeyID: "ABCDEFGH", APIKeyUID: types.UID(uid), Hash: keys.PHC{}}
}

func TestIndexJoinsAPIKeyAndHash(t *testing.T) {
	var changed []string
	ix := New(func(id string) { changed = append(changed, id) })
	now := time.Now()

	ix.SetAPIKey(facts("uid-1"))
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != ReasonUnknown {
		t.Errorf("APIKey without hash: Usable = %q, want unknown", r)
	}
	ix.SetHash(hashFor("uid-1", "secret-1"))
	e := ix.Lookup("ABCDEFGH")
	if r := e.Usable(now); r != "" {
		t.Fatalf("joined entry: Usable = %q, want usable", r)
	}
	if len(changed) != 2 {
		t.Errorf("onChange called %d times, want once per change (2)", len(changed))
	}

	// lastUsedAt writes do not change the version: no argon2 rerun.
	used := facts("uid-1")
	used.LastUsedAt = now
	ix.SetAPIKey(used)
	if got := ix.Lookup("ABCDEFGH"); got.Version != e.Version || !got.LastUsedAt.Equal(now) {
		t.Errorf("after a lastUsedAt change: version %d -> %d (want unchanged), lastUsedAt %v", e.Version, got.Version, got.LastUsedAt)
	}

	// Revocation changes the decision and the version at once.
	revoked := facts("uid-1")
	revoked.Revoked = true
	ix.SetAPIKey(revoked)
	if got := ix.Lookup("ABCDEFGH"); got.Version == e.Version || got.Usable(now) != ReasonRevoked {
		t.Errorf("after revocation: version %d (was %d), Usable %q", got.Version, e.Version, got.Usable(now))
	}
}

func TestIndexIgnoresHashOfAnotherIncarnation(t *testing.T) {
	ix := New(nil)
	// A hash Secret left over from a deleted APIKey of the same key ID.
	ix.SetHash(hashFor("old-uid", "secret-old"))
	ix.SetAPIKey(facts("new-uid"))
	if e := ix.Lookup("ABCDEFGH"); e.Hash != nil || e.Usable(time.Now()) != ReasonUnknown {
		t.Errorf("a hash written for another APIKey UID authenticates: %+v", e)
	}
}

func TestIndexExpiryAndDeletes(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	f := facts("uid-1")
	f.ExpiresAt = now.Add(time.Minute)
	ix.SetAPIKey(f)
	ix.SetHash(hashFor("uid-1", "secret-1"))
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != "" {
		t.Errorf("before expiry: %q", r)
	}
	if r := ix.Lookup("ABCDEFGH").Usable(now.Add(time.Minute)); r != ReasonExpired {
		t.Errorf("at expiry: %q, want expired", r)
	}

	ix.DeleteHash("secret-1")
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != ReasonUnknown {
		t.Errorf("hash deleted: %q, want unknown", r)
	}
	ix.DeleteAPIKey(f.Name)
	if e := ix.Lookup("ABCDEFGH"); e != nil || ix.Len() != 0 {
		t.Errorf("both sides deleted: entry %+v, len %d", e, ix.Len())
	}
}

// A relist (after a watch expired or the API server came back) replaces
// what the index knows: what the fresh list lacks was deleted while nobody
// watched. A namespace's relist touches only that namespace.
func TestRelistDropsWhatAFreshListLacks(t *testing.T) {
	ix := New(nil)
	team := &apiKeyStore{store: store{ix: ix}, namespace: "team"}
	hashes := &hashStore{store{ix: ix}}
	laptop, ci, other := apiKey("team", "laptop", "uid-1", "ABCDEFGH"), apiKey("team", "ci", "uid-2", "ZZZZZZZZ"), apiKey("other", "x", "uid-3", "YYYYYYYY")
	for _, k := range []*gatewayv1alpha1.APIKey{laptop, ci, other} {
		ix.SetAPIKey(APIKeyFactsOf(k))
	}
	ix.SetHash(hashFor("uid-1", "secret-1"))
	ix.SetHash(HashFacts{SecretUID: "secret-2", KeyID: "ZZZZZZZZ", APIKeyUID: "uid-2"})

	// The fresh lists no longer have "laptop" nor its hash.
	if err := team.Replace([]any{ci}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := hashes.Replace([]any{hashSecret("secret-2", "ZZZZZZZZ", "uid-2")}, "1"); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ABCDEFGH"); e != nil {
		t.Errorf("deleted key kept: %+v", e)
	}
	if e := ix.Lookup("ZZZZZZZZ"); e == nil || e.Hash == nil {
		t.Errorf("a key still listed lost its APIKey or hash: %+v", e)
	}
	if ix.Lookup("YYYYYYYY") == nil || ix.APIKey(types.NamespacedName{Namespace: "other", Name: "x"}) == nil {
		t.Error("a relist of namespace team dropped a key of namespace other")
	}
	if !team.synced.Load() || !hashes.synced.Load() {
		t.Error("a store that received its full list does not report synced")
	}
}

func apiKey(ns, name, uid, id string) *gatewayv1alpha1.APIKey {
	return &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID(uid)},
		Status:     gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, Prefix: keys.Prefix + id},
	}
}

func hashSecret(uid, id, apiKeyUID string) *corev1.Secret {
	k, _ := keys.Generate()
	k, _ = keys.WithID(k, id)
	phc, err := keys.Hash(k, keys.Params{Memory: keys.MinMemoryKiB, Time: 1, Threads: 1})
	if err != nil {
		panic(err)
	}
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "codevector-system", Name: "hash-" + apiKeyUID, UID: types.UID(uid),
			Labels: map[string]string{gatewayv1alpha1.LabelKeyID: id, gatewayv1alpha1.LabelAPIKeyUID: apiKeyUID}},
		Type: gatewayv1alpha1.HashSecretType,
		Data: map[string][]byte{gatewayv1alpha1.HashSecretKey: []byte(phc)},
	}
}

// A hash Secret's labels can change (Secrets are immutable in data only):
// relabelled to another key ID, it stops counting for the old one.
func TestRelabelledHashSecretMovesToItsNewKeyID(t *testing.T) {
	ix := New(nil)
	hashes := &hashStore{store{ix: ix}}
	ix.SetAPIKey(APIKeyFactsOf(apiKey("team", "laptop", "uid-1", "ABCDEFGH")))
	if err := hashes.Update(hashSecret("secret-1", "ABCDEFGH", "uid-1")); err != nil {
		t.Fatal(err)
	}
	if r := ix.Lookup("ABCDEFGH").Usable(time.Now()); r != "" {
		t.Fatalf("joined: %q", r)
	}
	if err := hashes.Update(hashSecret("secret-1", "ZZZZZZZZ", "uid-1")); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ABCDEFGH"); e.Hash != nil {
		t.Error("the old key ID still authenticates with a hash relabelled away from it")
	}
	// Labels that no longer make a hash Secret: it authenticates nothing.
	bad := hashSecret("secret-1", "ZZZZZZZZ", "uid-1")
	bad.Labels = nil
	if err := hashes.Update(bad); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ZZZZZZZZ"); e != nil {
		t.Errorf("an unlabelled Secret is still indexed: %+v", e)
	}
}

// Two APIKeys claiming one key ID (only a raw write can do that; the
// controller never issues a duplicate): deleting one leaves the other.
func TestDeletingOneOfTwoClaimantsKeepsTheOther(t *testing.T) {
	ix := New(nil)
	a, b := apiKey("team", "a", "uid-a", "ABCDEFGH"), apiKey("team", "b", "uid-b", "ABCDEFGH")
	ix.SetAPIKey(APIKeyFactsOf(a))
	ix.SetAPIKey(APIKeyFactsOf(b))
	ix.DeleteAPIKey(types.NamespacedName{Namespace: "team", Name: "a"})
	if e := ix.Lookup("ABCDEFGH"); e == nil || e.UID != "uid-b" {
		t.Errorf("after deleting a: %+v, want b's entry", e)
	}
	if ix.APIKey(types.NamespacedName{Namespace: "team", Name: "b"}) == nil {
		t.Error("b is gone from the console's view")
	}
}

// Past maxNamespaceWatches namespaces, one watch of all namespaces feeds a
// store that keeps only the wanted ones.
func TestFilteredStoreKeepsOnlyItsNamespaces(t *testing.T) {
	ix := New(nil)
	s := &apiKeyStore{store: store{ix: ix}, only: map[string]bool{"team": true}}
	wanted, other := apiKey("team", "a", "uid-a", "ABCDEFGH"), apiKey("elsewhere", "b", "uid-b", "ZZZZZZZZ")
	if err := s.Replace([]any{wanted, other}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(apiKey("elsewhere", "c", "uid-c", "YYYYYYYY")); err != nil {
		t.Fatal(err)
	}
	if ix.Lookup("ABCDEFGH") == nil || ix.Lookup("ZZZZZZZZ") != nil || ix.Lookup("YYYYYYYY") != nil || len(ix.APIKeys()) != 1 {
		t.Errorf("the store kept %d APIKeys; want only team/a", len(ix.APIKeys()))
	}
}

// An APIKey being deleted (deletionTimestamp set, finalizer still there
// because the manager is down) is refused as revoked at once, and its entry
// changes version so no verified-key cache entry outlives the delete.
func TestDeletingAPIKeyIsRefusedAsRevoked(t *testing.T) {
	ix := New(nil)
	s := &apiKeyStore{store: store{ix: ix}}
	k := apiKey("team", "laptop", "uid-1", "ABCDEFGH")
	if err := s.Add(k); err != nil {
		t.Fatal(err)
	}
	ix.SetHash(hashFor("uid-1", "secret-1"))
	now := time.Now()
	before := ix.Lookup("ABCDEFGH")
	if r := before.Usable(now); r != "" {
		t.Fatalf("before the delete: Usable = %q", r)
	}

	deleting := k.DeepCopy()
	deleting.DeletionTimestamp = &metav1.Time{Time: now}
	deleting.Finalizers = []string{gatewayv1alpha1.Finalizer}
	if err := s.Update(deleting); err != nil {
		t.Fatal(err)
	}
	after := ix.Lookup("ABCDEFGH")
	if r := after.Usable(now); r != ReasonRevoked {
		t.Errorf("deleting APIKey: Usable = %q, want revoked", r)
	}
	if after.Version == before.Version {
		t.Error("the delete kept the entry's version: a verified-key cache hit would still be honoured")
	}

	// A relist that finds the APIKey still deleting keeps refusing it.
	if err := s.Replace([]any{deleting}, "2"); err != nil {
		t.Fatal(err)
	}
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != ReasonRevoked {
		t.Errorf("after a relist: Usable = %q, want revoked", r)
	}
}
