// Package keyindex is the gateway's view of every key: an in-memory index
// from key ID to what authentication needs, fed by watch events on APIKeys
// and hash Secrets. It is the only state shared between requests, and no
// request ever waits on the API server for it.
package keyindex

import (
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/keys"
)

// Entry is an immutable snapshot of one key, joined from its APIKey and its
// hash Secret. A change to either source replaces the whole Entry, so a
// reader can hold one without locks.
type Entry struct {
	// APIKeyFacts is the APIKey side (zero while only the hash is known).
	// The gateway acts on spec.revoked directly, so a revocation takes
	// effect as soon as its watch event arrives, before the controller has
	// even deleted the hash; and ExpiresAt is resolved from spec, so the
	// gateway enforces expiry even while the manager is down.
	APIKeyFacts

	// Hash is the parsed argon2id hash, nil until the hash Secret is seen.
	Hash *keys.PHC
	// HashUID identifies the hash Secret the Hash came from.
	HashUID types.UID

	// Version changes whenever anything that decides authentication
	// changes (not on lastUsedAt writes, which would otherwise force an
	// argon2 run per key per flush interval). A verified-key cache entry is
	// honoured only for the Version it was verified against.
	Version uint64
}

// Usable reports why e cannot authenticate a request at now, or "" if it can.
func (e *Entry) Usable(now time.Time) Reason {
	switch {
	case e == nil:
		return ReasonUnknown
	case e.Revoked || e.Phase == gatewayv1alpha1.PhaseRevoked:
		return ReasonRevoked
	case !e.ExpiresAt.IsZero() && !now.Before(e.ExpiresAt), e.Phase == gatewayv1alpha1.PhaseExpired:
		return ReasonExpired
	case e.Phase != gatewayv1alpha1.PhaseActive || e.Hash == nil || e.UID == "":
		return ReasonUnknown
	default:
		return ""
	}
}

// Reason says why a key was refused.
type Reason string

const (
	ReasonUnknown Reason = "unknown"
	ReasonRevoked Reason = "revoked"
	ReasonExpired Reason = "expired"
)

// APIKeyFacts is what the index keeps of an APIKey.
type APIKeyFacts struct {
	// Name names the resource; UID ties it to one incarnation of it.
	Name  types.NamespacedName
	UID   types.UID
	KeyID string // from status.prefix; empty before the key is issued
	Owner string
	// Prefix is status.prefix, the part of the key shown everywhere.
	Prefix  string
	Revoked bool
	// Phase is status.phase as the controller last wrote it.
	Phase gatewayv1alpha1.Phase
	// ExpiresAt: zero means never.
	ExpiresAt time.Time
	// LastUsedAt is status.lastUsedAt as stored; the usage flusher only
	// writes newer times.
	LastUsedAt time.Time
}

// HashFacts is what the index keeps of a hash Secret.
type HashFacts struct {
	SecretUID types.UID
	KeyID     string
	APIKeyUID types.UID
	Hash      *keys.PHC
}

// Index joins APIKeys and hash Secrets by key ID.
type Index struct {
	mu       sync.RWMutex
	entries  map[string]*Entry               // key ID -> joined snapshot
	apiKeys  map[string]APIKeyFacts          // key ID -> APIKey side
	hashes   map[string]HashFacts            // key ID -> hash side
	byName   map[types.NamespacedName]string // APIKey -> key ID, to handle deletes
	byHash   map[types.UID]string            // hash Secret UID -> key ID
	versions uint64
	onChange func(keyID string)
}

// New returns an empty index. onChange, if set, is called (outside the
// lock) with the key ID of every entry that changed.
func New(onChange func(keyID string)) *Index {
	return &Index{
		entries:  map[string]*Entry{},
		apiKeys:  map[string]APIKeyFacts{},
		hashes:   map[string]HashFacts{},
		byName:   map[types.NamespacedName]string{},
		byHash:   map[types.UID]string{},
		onChange: onChange,
	}
}

// Lookup returns the entry of a key ID, or nil.
func (ix *Index) Lookup(keyID string) *Entry {
	ix.mu.RLock()
	e := ix.entries[keyID]
	ix.mu.RUnlock()
	return e
}

// Len is the number of key IDs known from either source.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.entries)
}

// SetAPIKey records the APIKey side of a key.
func (ix *Index) SetAPIKey(f APIKeyFacts) {
	ix.mu.Lock()
	var changed []string
	if old, ok := ix.byName[f.Name]; ok && old != f.KeyID {
		// Re-keyed or re-created under the same name: the old ID goes.
		delete(ix.apiKeys, old)
		changed = append(changed, ix.rejoinLocked(old))
	}
	if f.KeyID == "" {
		delete(ix.byName, f.Name)
	} else {
		ix.byName[f.Name] = f.KeyID
		ix.apiKeys[f.KeyID] = f
		changed = append(changed, ix.rejoinLocked(f.KeyID))
	}
	ix.mu.Unlock()
	ix.notify(changed)
}

// DeleteAPIKey forgets an APIKey.
func (ix *Index) DeleteAPIKey(name types.NamespacedName) {
	ix.mu.Lock()
	id, ok := ix.byName[name]
	var changed []string
	if ok {
		delete(ix.byName, name)
		delete(ix.apiKeys, id)
		changed = append(changed, ix.rejoinLocked(id))
	}
	ix.mu.Unlock()
	ix.notify(changed)
}

// SetHash records the hash side of a key.
func (ix *Index) SetHash(f HashFacts) {
	ix.mu.Lock()
	var changed []string
	if old, ok := ix.byHash[f.SecretUID]; ok && old != f.KeyID {
		delete(ix.hashes, old)
		changed = append(changed, ix.rejoinLocked(old))
	}
	ix.byHash[f.SecretUID] = f.KeyID
	ix.hashes[f.KeyID] = f
	changed = append(changed, ix.rejoinLocked(f.KeyID))
	ix.mu.Unlock()
	ix.notify(changed)
}

// DeleteHash forgets a hash Secret.
func (ix *Index) DeleteHash(secretUID types.UID) {
	ix.mu.Lock()
	id, ok := ix.byHash[secretUID]
	var changed []string
	if ok {
		delete(ix.byHash, secretUID)
		if h, ok := ix.hashes[id]; ok && h.SecretUID == secretUID {
			delete(ix.hashes, id)
		}
		changed = append(changed, ix.rejoinLocked(id))
	}
	ix.mu.Unlock()
	ix.notify(changed)
}

// rejoinLocked rebuilds the entry of one key ID from its two sides and
// returns the key ID.
func (ix *Index) rejoinLocked(id string) string {
	a, hasA := ix.apiKeys[id]
	h, hasH := ix.hashes[id]
	if !hasA && !hasH {
		delete(ix.entries, id)
		return id
	}
	e := &Entry{}
	if hasA {
		e.APIKeyFacts = a
	}
	e.KeyID = id
	// A hash counts only if it was written for this incarnation of the
	// APIKey: a hash Secret left over from a deleted APIKey must never
	// authenticate for a new one.
	if hasH && (!hasA || h.APIKeyUID == a.UID) {
		e.Hash, e.HashUID = h.Hash, h.SecretUID
	}
	if old := ix.entries[id]; old != nil && sameDecision(old, e) {
		e.Version = old.Version
	} else {
		ix.versions++
		e.Version = ix.versions
	}
	ix.entries[id] = e
	return id
}

// sameDecision reports whether a and b authenticate exactly the same way.
func sameDecision(a, b *Entry) bool {
	return a.UID == b.UID && a.HashUID == b.HashUID && a.Revoked == b.Revoked &&
		a.Phase == b.Phase && a.ExpiresAt.Equal(b.ExpiresAt) && a.Owner == b.Owner
}

func (ix *Index) notify(ids []string) {
	if ix.onChange == nil {
		return
	}
	for _, id := range ids {
		ix.onChange(id)
	}
}

// Retain drops every APIKey not named in apiKeys and every hash Secret
// whose UID is not in hashes: what a fresh full list no longer contains was
// deleted while the gateway was not watching.
func (ix *Index) Retain(apiKeys map[types.NamespacedName]bool, hashes map[types.UID]bool) {
	ix.mu.Lock()
	var changed []string
	for name, id := range ix.byName {
		if !apiKeys[name] {
			delete(ix.byName, name)
			delete(ix.apiKeys, id)
			changed = append(changed, ix.rejoinLocked(id))
		}
	}
	for uid, id := range ix.byHash {
		if !hashes[uid] {
			delete(ix.byHash, uid)
			if h, ok := ix.hashes[id]; ok && h.SecretUID == uid {
				delete(ix.hashes, id)
			}
			changed = append(changed, ix.rejoinLocked(id))
		}
	}
	ix.mu.Unlock()
	ix.notify(changed)
}
