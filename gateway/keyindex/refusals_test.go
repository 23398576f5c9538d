package keyindex

import (
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func factsAt(uid string, rv uint64) *APIKeyFacts {
	f := facts(uid)
	f.ResourceVersion = rv
	return &f
}

// A relayed revocation refuses the key at once, and no watch event older
// than it (a silent watch catching up) undoes it; a newer one replaces it.
func TestRelayedRevocationHoldsAgainstOlderEvents(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	ix.SetAPIKey(*factsAt("uid-1", 10))
	ix.SetHash(hashFor("uid-1", "secret-1"))
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != "" {
		t.Fatalf("before: %q", r)
	}
	before := ix.Lookup("ABCDEFGH").Version

	r := Revocation{Name: factsAt("uid-1", 0).Name, UID: "uid-1", ResourceVersion: 20, Reason: RevocationRevoked}
	if !ix.Refuse(r) {
		t.Fatal("Refuse applied nothing")
	}
	e := ix.Lookup("ABCDEFGH")
	if e.Usable(now) != ReasonRevoked || e.Version == before {
		t.Fatalf("after the relay: Usable %q, version %d (was %d)", e.Usable(now), e.Version, before)
	}
	if ix.Refuse(r) {
		t.Error("the same relay applied twice")
	}

	// The stalled watch delivers an older change (a lastUsedAt write at 15):
	// still refused.
	older := factsAt("uid-1", 15)
	older.LastUsedAt = now
	ix.setWatchedAPIKey(older, nil)
	if got := ix.Lookup("ABCDEFGH").Usable(now); got != ReasonRevoked {
		t.Fatalf("an older watch event undid the relayed revocation: %q", got)
	}
	// A full list at an older version does not either.
	ix.SetAPIKey(*factsAt("uid-1", 12))
	if got := ix.Lookup("ABCDEFGH").Usable(now); got != ReasonRevoked {
		t.Fatalf("an older list undid the relayed revocation: %q", got)
	}

	// The watch catches up: the revocation itself, at 20, supersedes the
	// relay.
	revoked := factsAt("uid-1", 20)
	revoked.Revoked = true
	ix.setWatchedAPIKey(revoked, nil)
	if got := ix.Lookup("ABCDEFGH").Usable(now); got != ReasonRevoked || ix.Refused() != 0 {
		t.Fatalf("after the watch caught up: %q, %d refusals held", got, ix.Refused())
	}
}

// A relay names one incarnation: the APIKey deleted and re-created under
// the same name (a new UID) is not refused by it, even when the relay
// arrives late.
func TestRelayedRevocationNeverRefusesAnotherIncarnation(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	ix.SetAPIKey(*factsAt("uid-new", 30))
	ix.SetHash(hashFor("uid-new", "secret-new"))
	ix.Refuse(Revocation{Name: factsAt("uid-old", 0).Name, UID: "uid-old", ResourceVersion: 20, Reason: RevocationDeleted})
	if got := ix.Lookup("ABCDEFGH").Usable(now); got != "" {
		t.Fatalf("a relay of the old incarnation refused the new one: %q", got)
	}
}

// A relay that arrives before the replica knows the APIKey refuses it when
// it comes, at the relayed version or older.
func TestRelayBeforeTheAPIKey(t *testing.T) {
	ix := New(nil)
	now := time.Now()
	ix.Refuse(Revocation{Name: factsAt("uid-1", 0).Name, UID: "uid-1", ResourceVersion: 20, Reason: RevocationDeleted})
	ix.SetAPIKey(*factsAt("uid-1", 10))
	ix.SetHash(hashFor("uid-1", "secret-1"))
	if got := ix.Lookup("ABCDEFGH").Usable(now); got != ReasonRevoked {
		t.Fatalf("an APIKey relayed as deleted: Usable %q", got)
	}
}

// Only changes the watch delivers as they happen are relayed, once, and
// never what a relay brought.
func TestWatchedRevocationsAreRelayedOnce(t *testing.T) {
	ix := New(nil)
	var relayed []Revocation
	ix.OnRevocation(func(r Revocation) { relayed = append(relayed, r) })
	revokedInList := factsAt("uid-0", 5)
	revokedInList.Name.Name = "listed"
	revokedInList.KeyID = "LISTEDKEY"
	revokedInList.Revoked = true
	ix.SetAPIKey(*revokedInList)
	ix.setWatchedAPIKey(factsAt("uid-1", 10), nil)
	revoked := factsAt("uid-1", 20)
	revoked.Revoked = true
	ix.setWatchedAPIKey(revoked, nil)
	deleting := factsAt("uid-1", 21)
	deleting.Revoked, deleting.Deleting = true, true
	ix.setWatchedAPIKey(deleting, nil)
	ix.deleteWatchedAPIKey(revoked.Name, 22)
	want := Revocation{Name: revoked.Name, UID: "uid-1", ResourceVersion: 20, Reason: RevocationRevoked}
	if len(relayed) != 1 || relayed[0] != want {
		t.Fatalf("relayed %+v, want only %+v", relayed, want)
	}

	// Deleted outright (no finalizer): relayed as deleted.
	ix.setWatchedAPIKey(factsAt("uid-2", 30), nil)
	ix.deleteWatchedAPIKey(revoked.Name, 31)
	if len(relayed) != 2 || relayed[1].Reason != RevocationDeleted || relayed[1].UID != "uid-2" || relayed[1].ResourceVersion != 31 {
		t.Fatalf("relayed %+v", relayed)
	}

	// Refused by a relay first: the watch's own revocation is not relayed
	// again.
	ix.setWatchedAPIKey(factsAt("uid-3", 40), nil)
	ix.Refuse(Revocation{Name: revoked.Name, UID: "uid-3", ResourceVersion: 41, Reason: RevocationRevoked})
	again := factsAt("uid-3", 41)
	again.Revoked = true
	ix.setWatchedAPIKey(again, nil)
	if len(relayed) != 2 {
		t.Fatalf("a relayed revocation was relayed again: %+v", relayed[2:])
	}
	if e := ix.APIKey(revoked.Name); e == nil || !e.Revoked || e.Phase != gatewayv1alpha1.PhaseActive {
		t.Errorf("facts after the relay: %+v", e)
	}
}
