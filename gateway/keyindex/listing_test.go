package keyindex

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// versioned is an APIKey's facts at resource version rv.
func versioned(rv uint64, revoked bool) *APIKeyFacts {
	f := facts("uid-1")
	f.ResourceVersion, f.Revoked = rv, revoked
	return &f
}

// While APIKeys are listed in the background, the list, the watch and the
// reads of single keys race: what came last must not win over what is
// newer, or a revocation the watch delivered could be undone by an older
// list item and never be corrected.
func TestListingKeepsTheNewestVersionOfEachAPIKey(t *testing.T) {
	ix := New(nil)
	ix.beginListing(func(context.Context, types.NamespacedName) (*APIKeyFacts, error) { return nil, nil })
	s := &apiKeyStore{store: store{ix: ix}}
	s.generation.Store(1)
	name := versioned(0, false).Name
	now := time.Now()

	ix.SetAPIKey(*versioned(10, true)) // the watch: revoked at 10
	s.merge([]*APIKeyFacts{versioned(7, false)}, 1)
	ix.SetHash(hashFor("uid-1", "secret-1"))
	if r := ix.Lookup("ABCDEFGH").Usable(now); r != ReasonRevoked {
		t.Errorf("an older list item undid a revocation the watch had delivered: Usable %q", r)
	}

	// Deleted at 12: an older list item or read cannot bring it back; a
	// new APIKey of the same name, later, can.
	ix.change(func(changed *[]string) { ix.deleteAPIKeyAtLocked(name, 12, changed) })
	s.merge([]*APIKeyFacts{versioned(11, false)}, 1)
	if ix.APIKey(name) != nil {
		t.Error("an older list item brought back an APIKey deleted since")
	}
	ix.SetAPIKey(*versioned(13, false))
	if f := ix.APIKey(name); f == nil || f.ResourceVersion != 13 {
		t.Errorf("an APIKey created again after its deletion: %+v", f)
	}

	// A Replace (a full relist) supersedes the background list.
	if err := s.Replace(nil, "20"); err != nil {
		t.Fatal(err)
	}
	if s.merge([]*APIKeyFacts{versioned(21, false)}, 1) {
		t.Error("a background list merged after a relist superseded it")
	}

	ix.endListing()
	select {
	case <-ix.Listed():
	default:
		t.Error("Listed not closed once the listing ended")
	}
	// Outside the listing, the watch's order is the truth.
	ix.SetAPIKey(*versioned(30, false))
	ix.SetAPIKey(*versioned(5, true))
	if f := ix.APIKey(name); !f.Revoked {
		t.Error("after the listing, a watch event was refused for its resource version")
	}
}

// Resolve reads the APIKey of a key whose hash is known, once for any
// number of requests, and only while listing.
func TestResolveReadsAnAPIKeyNotListedYetOnce(t *testing.T) {
	ix := New(nil)
	var reads atomic.Int32
	release := make(chan struct{})
	ix.beginListing(func(_ context.Context, name types.NamespacedName) (*APIKeyFacts, error) {
		reads.Add(1)
		<-release
		if name != versioned(0, false).Name {
			t.Errorf("read APIKey %s, not the one the hash Secret names", name)
		}
		return versioned(3, false), nil
	})
	addHashOf(t, ix, "ABCDEFGH", "team", "laptop")
	if r := ix.Lookup("ABCDEFGH").Usable(time.Now()); r != ReasonUnknown {
		t.Fatalf("a hash alone: Usable %q", r)
	}

	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if e, err := ix.Resolve(t.Context(), ix.Lookup("ABCDEFGH")); err != nil || e.Usable(time.Now()) != "" {
				t.Errorf("resolved entry: Usable %q (err %v), want usable", e.Usable(time.Now()), err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := reads.Load(); n != 1 {
		t.Errorf("8 requests read the APIKey %d times, want once", n)
	}
	if e, err := ix.Resolve(t.Context(), ix.Lookup("UNKNOWN0")); e != nil || err != nil {
		t.Error("an unknown key ID resolved to an entry")
	}

	// Once listed, a hash without its APIKey is unknown: nothing is read.
	ix.DeleteAPIKey(versioned(0, false).Name)
	ix.endListing()
	if e, err := ix.Resolve(t.Context(), ix.Lookup("ABCDEFGH")); err != nil || e.Usable(time.Now()) != ReasonUnknown || reads.Load() != 1 {
		t.Errorf("after the listing: Usable %q (err %v) after %d reads; want unknown after 1", e.Usable(time.Now()), err, reads.Load())
	}
}

// A failed read leaves the key undecided (an error, no entry), and the next
// request reads again.
func TestResolveReportsAFailedReadAndTriesAgain(t *testing.T) {
	ix := New(nil)
	var reads atomic.Int32
	ix.beginListing(func(context.Context, types.NamespacedName) (*APIKeyFacts, error) {
		if reads.Add(1) == 1 {
			return nil, errors.New("the API server did not answer in time")
		}
		return versioned(3, false), nil
	})
	addHashOf(t, ix, "ABCDEFGH", "team", "laptop")
	if e, err := ix.Resolve(t.Context(), ix.Lookup("ABCDEFGH")); err == nil || e != nil {
		t.Errorf("a failed read: entry %v, err %v; want no entry and the error", e, err)
	}
	if e, err := ix.Resolve(t.Context(), ix.Lookup("ABCDEFGH")); err != nil || e.Usable(time.Now()) != "" || reads.Load() != 2 {
		t.Errorf("the next request: Usable %q, err %v after %d reads; want usable after 2", e.Usable(time.Now()), err, reads.Load())
	}
}

// addHashOf gives ix the hash Secret of key ID keyID, labelled with the
// APIKey it belongs to, as the manager writes it.
func addHashOf(t *testing.T, ix *Index, keyID, namespace, name string) {
	t.Helper()
	sec := hashSecret("secret-1", keyID, "uid-1")
	sec.Labels["gateway.codevector.io/apikey-namespace"], sec.Labels["gateway.codevector.io/apikey-name"] = namespace, name
	if err := (&hashStore{store{ix: ix}}).Update(sec); err != nil {
		t.Fatal(err)
	}
}
