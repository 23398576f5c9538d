package keyindex

import (
	"context"
	"strconv"
	"time"

	"golang.org/x/sync/singleflight"
	"k8s.io/apimachinery/pkg/types"
)

// A gateway that started with 100,000 keys used to wait, before it was
// ready, for the API server to encode every APIKey as JSON: 150 MB, and
// 18-48 s of the API server's CPU on two cores (custom resources have no
// protobuf, and each list is deep-copied for a no-op conversion first; see
// docs/benchmarks.md, "Scale"). A gateway whose index is empty now starts
// instead (faststart.go):
//
//  1. It reads the current resource version W of APIKeys (a list of one)
//     and opens its APIKey watches from W, so every change after W, a
//     revocation included, reaches the index as it happens.
//  2. It lists the hash Secrets in full (protobuf, a fraction of the cost)
//     and is ready then.
//  3. It lists the APIKeys in the background, at W or later
//     (resourceVersionMatch=NotOlderThan).
//
// Until that list is in, a request whose key's hash is known but whose
// APIKey is not reads that one APIKey from the API server (Resolve): one
// GET per key, only for keys that pass the hash's quick check.
//
// Why this is as safe as waiting. The watch covers every change after W;
// the background list and every GET read state at W or later, so none of
// them misses a change before W. They race with the watch, so while
// listing an APIKey's facts replace the index's only if their resource
// version is higher, and a deleted APIKey leaves its version behind (a
// tombstone) so that an older list item or GET cannot bring it back.
// Resource versions are compared as numbers, which they are for every API
// server backed by etcd; a version that is not a number is never refused.

// listing is the index's state while APIKeys are listed in the background.
type listing struct {
	// owners is the APIKey each hash Secret's labels name, by key ID: what
	// Resolve reads for a key whose APIKey is not listed yet. Dropped, like
	// all of listing, once the list is in.
	owners map[string]types.NamespacedName
	// tombstones is the resource version each APIKey deleted while
	// listing was deleted at.
	tombstones map[types.NamespacedName]uint64
	fetch      FetchFunc
	flight     singleflight.Group
}

// FetchFunc reads one APIKey's facts from the API server: nil and no error
// when it does not exist.
type FetchFunc func(ctx context.Context, name types.NamespacedName) (*APIKeyFacts, error)

// stale reports whether f is older than what the index holds of its
// APIKey (old, which may be nil) or than its deletion.
func (l *listing) stale(f, old *APIKeyFacts) bool {
	if f.ResourceVersion == 0 {
		return false
	}
	if old != nil && f.ResourceVersion <= old.ResourceVersion {
		return true
	}
	return f.ResourceVersion <= l.tombstones[f.Name]
}

func (l *listing) deleted(name types.NamespacedName, rv uint64) {
	if rv > l.tombstones[name] {
		l.tombstones[name] = rv
	}
}

// resourceVersionNumber parses a resource version; 0 if it is not a
// number.
func resourceVersionNumber(rv string) uint64 {
	n, err := strconv.ParseUint(rv, 10, 64)
	if err != nil {
		return 0
	}
	return n
}

// beginListing puts the index in the listing state, in which Resolve reads
// APIKeys it does not hold yet with fetch.
func (ix *Index) beginListing(fetch FetchFunc) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.listing != nil {
		return
	}
	ix.listing = &listing{owners: map[string]types.NamespacedName{}, tombstones: map[types.NamespacedName]uint64{}, fetch: fetch}
	ix.listed = make(chan struct{})
}

// endListing records that every APIKey is in the index.
func (ix *Index) endListing() {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.listing == nil {
		return
	}
	ix.listing = nil
	close(ix.listed)
}

// Listed is closed once the index holds every APIKey it watches: at once
// for an index that never listed in the background. Readers of the whole
// list of keys (the console) wait for it; authentication need not.
func (ix *Index) Listed() <-chan struct{} {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.listed
}

// noteOwner records, while listing, which APIKey the hash Secret of key ID
// keyID was written for.
func (ix *Index) noteOwner(keyID string, apiKey types.NamespacedName) {
	// Outside the listing, which is almost always, a hash Secret's event
	// costs no write lock here: SetHash takes it next.
	ix.mu.RLock()
	listing := ix.listing != nil
	ix.mu.RUnlock()
	if !listing {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.listing != nil {
		ix.listing.owners[keyID] = apiKey
	}
}

// fetchTimeout bounds the read of one APIKey by Resolve.
const fetchTimeout = 5 * time.Second

// Resolve completes e, an entry Lookup returned for a request about to be
// authenticated: while APIKeys are listed in the background, an entry
// whose hash is known and whose APIKey is not yet has its APIKey read from
// the API server (once per key ID; requests for the same APIKey share one
// read) and is looked up again. Any other entry is returned as it is.
//
// An error means the read failed (the API server is slow or away), so
// whether the key may be used is not known yet: the caller must not
// refuse the key as if it were unknown, only ask the client to retry.
func (ix *Index) Resolve(ctx context.Context, e *Entry) (*Entry, error) {
	if e == nil || e.UID != "" || e.hashSide == nil {
		return e, nil
	}
	keyID := e.KeyID
	ix.mu.RLock()
	l := ix.listing
	var name types.NamespacedName
	var ok bool
	if l != nil {
		name, ok = l.owners[keyID]
	}
	log := ix.log
	ix.mu.RUnlock()
	if !ok {
		return e, nil
	}
	_, err, _ := l.flight.Do(name.String(), func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
		defer cancel()
		f, err := l.fetch(ctx, name)
		if err != nil {
			// The next request for the key tries again.
			log.Warn("Could not read an APIKey not listed yet", "apikey", name.String(), "err", err)
			return nil, err
		}
		ix.change(func(changed *[]string) {
			// Once the listing is over, the index holds the listed version,
			// which may be newer than this one.
			if ix.listing != l {
				return
			}
			delete(l.owners, keyID)
			if f != nil {
				ix.setAPIKeyLocked(f, changed)
			}
		})
		return nil, nil
	})
	if err != nil {
		if cur := ix.Lookup(keyID); cur != nil && cur.UID != "" {
			return cur, nil // listed or watched meanwhile
		}
		return nil, err
	}
	return ix.Lookup(keyID), nil
}

func closedChannel() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

// holdsNoAPIKeys reports whether the index has no APIKey yet: a gateway
// that has not listed any.
func (ix *Index) holdsNoAPIKeys() bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.apiKeys) == 0
}
