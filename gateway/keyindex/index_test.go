package keyindex

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/keys"
)

func facts(uid string) APIKeyFacts {
	return APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: types.UID(uid), KeyID: "ABCDEFGH",
		Owner: "alice", Prefix: "cvk_ABCDEFGH", Phase: gatewayv1alpha1.PhaseActive}
}

func hashFor(uid, secretUID string) HashFacts {
	return HashFacts{SecretUID: types.UID(secretUID), KeyID: "ABCDEFGH", APIKeyUID: types.UID(uid), Hash: &keys.PHC{}}
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

func TestIndexRetainDropsWhatAFreshListLacks(t *testing.T) {
	ix := New(nil)
	ix.SetAPIKey(facts("uid-1"))
	ix.SetHash(hashFor("uid-1", "secret-1"))
	other := APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "ci"}, UID: "uid-2", KeyID: "ZZZZZZZZ", Phase: gatewayv1alpha1.PhaseActive}
	ix.SetAPIKey(other)

	// The fresh list no longer has "laptop" nor its hash (deleted while the
	// gateway was not watching), and still has "ci".
	ix.Retain(map[types.NamespacedName]bool{other.Name: true}, map[types.UID]bool{})
	if e := ix.Lookup("ABCDEFGH"); e != nil {
		t.Errorf("deleted key kept: %+v", e)
	}
	if e := ix.Lookup("ZZZZZZZZ"); e == nil {
		t.Error("a key still listed was dropped")
	}
}
