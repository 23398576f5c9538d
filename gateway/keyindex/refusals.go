package keyindex

import (
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Revocations relayed between replicas (gateway/relay).
//
// A replica whose API server watch has gone silent (a cut the TCP
// connection never reports) would keep accepting a revoked key until the
// watch resumes. So a replica that applies a revocation or a deletion from
// its own watch tells its peers (OnRevocation), and a peer that hears of
// it marks the key refused here (Refuse) before its own watch says so.
//
// A refusal names one incarnation of an APIKey (its UID), so a stale
// relay can never refuse a key deleted and re-created under the same
// name. It holds at the resource version it was seen at: the index's facts
// of that APIKey at that version or older are served as revoked (or
// deleting), whatever an older watch event or list says; facts at a newer
// version supersede it (they already say revoked, since a revocation
// cannot be undone, and a deleted APIKey's UID never comes back).

// Revocation is what one replica's watch saw happen to an APIKey: revoked
// (spec.revoked set), deleting (deletionTimestamp set) or deleted (gone).
type Revocation struct {
	Name            types.NamespacedName
	UID             types.UID
	ResourceVersion uint64
	Reason          RevocationReason
}

// RevocationReason is why a relayed APIKey is refused.
type RevocationReason string

const (
	RevocationRevoked RevocationReason = "revoked"
	// RevocationDeleted: a deletionTimestamp, or the APIKey gone; both are
	// refused as revoked (Entry.Usable), as the watch would.
	RevocationDeleted RevocationReason = "deleted"
)

// maxRefusals bounds the refusals held: one per relayed revocation until
// the watch catches up with it. Past it, refusals of APIKeys the index
// does not hold (any more) are dropped first.
const maxRefusals = 1 << 16

// OnRevocation sets the function called, outside the lock, with every
// revocation or deletion the index applies from its own watches (never one
// it heard from a peer, never one in a full list: only changes seen as
// they happen). Set it before the index is fed.
func (ix *Index) OnRevocation(f func(Revocation)) {
	ix.mu.Lock()
	ix.onRevocation = f
	ix.mu.Unlock()
}

// Refuse applies a revocation heard from a peer. It reports whether it
// changed anything: false when the index already knew (its own watch got
// there first, or the relay came before).
func (ix *Index) Refuse(r Revocation) bool {
	if r.UID == "" || r.Name.Name == "" {
		return false
	}
	applied := false
	ix.change(func(changed *[]string) {
		old := ix.apiKeys[r.Name]
		if old != nil && old.UID == r.UID && old.ResourceVersion != 0 && old.ResourceVersion >= r.ResourceVersion {
			// The watch is at or past the relayed version: nothing to add.
			return
		}
		if prev, ok := ix.refused[r.UID]; ok && prev.ResourceVersion >= r.ResourceVersion {
			return
		}
		if len(ix.refused) >= maxRefusals {
			ix.dropOrphanRefusalsLocked()
			if len(ix.refused) >= maxRefusals {
				return
			}
		}
		ix.refused[r.UID] = r
		applied = true
		if old != nil && old.UID == r.UID && !old.Revoked && !old.Deleting {
			// From now on this replica refuses the key: the moment its
			// confirmation time ends, once the watch says when it began.
			ix.refusedAt[r.UID] = time.Now()
		}
		if old != nil && old.UID == r.UID {
			// Re-apply what the index holds, now under the refusal.
			ix.putAPIKeyLocked(ix.underRefusalLocked(old), old, changed)
		}
	})
	return applied
}

// Refused is how many relayed refusals the index holds (metrics).
func (ix *Index) Refused() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.refused)
}

// underRefusalLocked returns f as it must be served: f itself, or when a
// refusal of f's incarnation is at f's version or newer, a copy refused as
// revoked or deleting. A refusal that f's version has passed is dropped.
func (ix *Index) underRefusalLocked(f *APIKeyFacts) *APIKeyFacts {
	r, ok := ix.refused[f.UID]
	if !ok || f.UID == "" {
		return f
	}
	if f.ResourceVersion != 0 && f.ResourceVersion >= r.ResourceVersion {
		if at, ok := ix.refusedAt[f.UID]; ok && (f.Revoked || f.Deleting) {
			ix.observeRefusalLocked(r, f.RefusalWrittenAt, at)
		}
		ix.forgetRefusalLocked(f.UID)
		return f
	}
	if (r.Reason == RevocationRevoked && f.Revoked) || (r.Reason == RevocationDeleted && f.Deleting) {
		return f
	}
	c := *f
	if r.Reason == RevocationRevoked {
		c.Revoked = true
	} else {
		c.Deleting = true
	}
	return &c
}

// forgetRefusalLocked drops the relayed refusal of an APIKey incarnation
// and when it took effect.
func (ix *Index) forgetRefusalLocked(uid types.UID) {
	delete(ix.refused, uid)
	delete(ix.refusedAt, uid)
}

// dropOrphanRefusalsLocked drops the refusals of incarnations the index
// does not hold.
func (ix *Index) dropOrphanRefusalsLocked() {
	for uid, r := range ix.refused {
		if cur := ix.apiKeys[r.Name]; cur == nil || cur.UID != uid {
			ix.forgetRefusalLocked(uid)
		}
	}
}

// revocationOf reports whether f is revoked or deleting in a way old (the
// facts it replaces) was not: a revocation to relay.
func revocationOf(old, f *APIKeyFacts) (Revocation, bool) {
	if old == nil || old.UID != f.UID || old.Revoked || old.Deleting {
		return Revocation{}, false
	}
	r := Revocation{Name: f.Name, UID: f.UID, ResourceVersion: f.ResourceVersion}
	switch {
	case f.Revoked:
		r.Reason = RevocationRevoked
	case f.Deleting:
		r.Reason = RevocationDeleted
	default:
		return Revocation{}, false
	}
	return r, true
}

// setWatchedAPIKey is SetAPIKey for a change a watch delivered as it
// happened, k being the APIKey f was made of: a revocation or deletion it
// makes is relayed, and so is a change to what its key may do (changes.go;
// not without k).
func (ix *Index) setWatchedAPIKey(f *APIKeyFacts, k *gatewayv1alpha1.APIKey) {
	ix.change(func(changed *[]string) {
		old := ix.apiKeys[f.Name]
		if !ix.setAPIKeyLocked(f, changed) {
			return
		}
		if r, ok := revocationOf(old, f); ok {
			ix.relays = append(ix.relays, r)
			ix.observeRefusalLocked(r, f.RefusalWrittenAt, time.Now())
		} else if k != nil && ix.onAPIKeyChange != nil && changesWhatItMay(old, f) {
			ix.changeRelays = append(ix.changeRelays, RelayedAPIKey(k))
		}
	})
}

// deleteWatchedAPIKey is the deletion of an APIKey a watch delivered as it
// happened, at resource version rv: relayed unless the index already had
// it refused (a deletionTimestamp, relayed then, comes first when the
// manager runs).
func (ix *Index) deleteWatchedAPIKey(name types.NamespacedName, rv uint64) {
	ix.change(func(changed *[]string) {
		old := ix.apiKeys[name]
		ix.deleteAPIKeyAtLocked(name, rv, changed)
		if old != nil && !old.Revoked && !old.Deleting {
			ix.relays = append(ix.relays, Revocation{Name: name, UID: old.UID, ResourceVersion: rv, Reason: RevocationDeleted})
		}
	})
}
