package keyindex

import (
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// rotated is facts("uid-1") after a rotation from ABCDEFGH to NEWKEY12,
// with the old key working until graceEnds.
func rotated(graceEnds time.Time) APIKeyFacts {
	f := facts("uid-1")
	f.KeyID, f.Prefix = "NEWKEY12", "cvk_NEWKEY12"
	f.PreviousKeyID, f.PreviousPrefix, f.PreviousExpiresAt = "ABCDEFGH", "cvk_ABCDEFGH", graceEnds
	return f
}

func TestRotatedAPIKeyClaimsBothKeyIDsUntilGraceEnds(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	graceEnds := now.Add(time.Hour)
	ix.SetAPIKey(facts("uid-1"))
	ix.SetHash(hashFor("uid-1", "secret-old"))
	before := ix.Lookup("ABCDEFGH")

	ix.SetAPIKey(rotated(graceEnds))
	newHash := hashFor("uid-1", "secret-new")
	newHash.KeyID = "NEWKEY12"
	ix.SetHash(newHash)

	old, cur := ix.Lookup("ABCDEFGH"), ix.Lookup("NEWKEY12")
	if r := old.Usable(now); r != "" {
		t.Errorf("previous key during its grace period: Usable = %q, want usable", r)
	}
	if r := cur.Usable(now); r != "" {
		t.Errorf("current key: Usable = %q, want usable", r)
	}
	if !old.Previous || cur.Previous {
		t.Errorf("Previous: old %v, current %v", old.Previous, cur.Previous)
	}
	if old.KeyID != "ABCDEFGH" || old.Prefix != "cvk_ABCDEFGH" || cur.KeyID != "NEWKEY12" {
		t.Errorf("entries carry key IDs %q (%q) and %q, want their own", old.KeyID, old.Prefix, cur.KeyID)
	}
	if old.HashUID != "secret-old" || cur.HashUID != "secret-new" {
		t.Errorf("hashes: old %q, current %q", old.HashUID, cur.HashUID)
	}
	if old.Version == before.Version || old.Version == cur.Version {
		t.Errorf("versions: before %d, old %d, current %d: the verified cache must tell them apart", before.Version, old.Version, cur.Version)
	}

	// The grace period ends at previous.expiresAt, before the controller
	// has deleted the hash or cleared status.previous.
	if r := old.Usable(graceEnds); r != ReasonExpired {
		t.Errorf("previous key at the end of its grace period: Usable = %q, want expired", r)
	}
	if r := cur.Usable(graceEnds); r != "" {
		t.Errorf("current key after the grace period: Usable = %q", r)
	}

	// A shorter grace period (e.g. a second rotation) changes the old
	// key's version, not the new one's.
	ix.SetAPIKey(rotated(now.Add(time.Minute)))
	if got := ix.Lookup("ABCDEFGH"); got.Version == old.Version {
		t.Error("the previous key's entry kept its version when its grace period changed")
	}
	if got := ix.Lookup("NEWKEY12"); got.Version != cur.Version {
		t.Error("the current key's entry changed version when only the previous key's grace period did")
	}

	// Revocation ends both.
	revoked := rotated(graceEnds)
	revoked.Revoked = true
	ix.SetAPIKey(revoked)
	for _, id := range []string{"ABCDEFGH", "NEWKEY12"} {
		if r := ix.Lookup(id).Usable(now); r != ReasonRevoked {
			t.Errorf("%s after revocation: Usable = %q, want revoked", id, r)
		}
	}

	// The controller clears status.previous: the APIKey lets the old key
	// ID go, and its hash alone authenticates nothing.
	ix.SetAPIKey(func() APIKeyFacts { f := rotated(time.Time{}); f.PreviousKeyID, f.PreviousPrefix = "", ""; return f }())
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != ReasonUnknown {
		t.Errorf("previous key once status.previous is cleared: Usable = %q, want unknown", r)
	}
	ix.DeleteAPIKey(types.NamespacedName{Namespace: "team", Name: "laptop"})
	if r := ix.Lookup("NEWKEY12").Usable(now); r != ReasonUnknown {
		t.Errorf("current key of a deleted APIKey: %q", r)
	}
}

// The first-claimant rule holds for a previous key ID too: an APIKey
// created later cannot take it by naming it.
func TestPreviousKeyIDKeepsItsFirstClaimant(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	f := rotated(now.Add(time.Hour))
	f.CreatedAt = now.Add(-time.Hour)
	ix.SetAPIKey(f)
	ix.SetHash(hashFor("uid-1", "secret-old"))

	impostor := facts("uid-2")
	impostor.Name.Name = "impostor"
	impostor.CreatedAt = now
	ix.SetAPIKey(impostor)
	if e := ix.Lookup("ABCDEFGH"); e.UID != "uid-1" || !e.Previous || e.Usable(now) != "" {
		t.Errorf("the previous key ID went to a later claimant: uid %q previous %v usable %q", e.UID, e.Previous, e.Usable(now))
	}
	if ix.Conflicts() != 1 {
		t.Errorf("Conflicts = %d, want 1", ix.Conflicts())
	}
}
