package keyindex

import (
	"cmp"
	"slices"

	"k8s.io/apimachinery/pkg/types"

	"github.com/codevector/codevector/keys"
)

// A key ID belongs to its first claimant. The controller never issues one
// key ID twice, but anyone who can write an APIKey's status.prefix, or a
// Secret labelled with a key ID in the system namespace, can make a second
// object claim it. Were the last claimant to win, as the last watch event
// did before, such an object would take the key ID from its owner, whose
// key would then get 401 on every replica. So:
//
//   - of the APIKeys claiming a key ID, the one created first holds it
//     (then the lowest UID): every replica picks the same one, whatever
//     order its watches delivered them in, and a later APIKey cannot take
//     an issued key's ID because it cannot be created earlier;
//   - only a hash Secret written for that APIKey's UID counts; any other
//     Secret claiming the key ID authenticates nothing;
//   - the others are refused and reported (Conflicts, and a warning), and
//     the next in order takes over when the first goes away.
//
// In the common case of one APIKey and one hash Secret, the entry alone
// records both; the full lists are kept, in contested, only for key IDs
// with more than one claimant of a kind, so 100,000 keys cost no more than
// before.

// claimants is every APIKey and hash Secret claiming one contested key ID,
// each list in claim order: the first holds the key ID.
type claimants struct {
	apiKeys []*APIKeyFacts
	hashes  []*HashFacts
}

// warning is a log line to write once the write lock is released.
type warning struct {
	msg  string
	args []any
}

// Conflicts is the number of key IDs that more than one APIKey or more
// than one hash Secret claims.
func (ix *Index) Conflicts() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.contested)
}

// claimantsLocked returns the claimants of key ID id, in claim order,
// appended to the (empty) slices given: callers pass arrays of one on their
// stack, so the common case allocates nothing.
func (ix *Index) claimantsLocked(id string, apiKeys []*APIKeyFacts, hashes []*HashFacts) ([]*APIKeyFacts, []*HashFacts) {
	if c := ix.contested[id]; c != nil {
		return append(apiKeys, c.apiKeys...), append(hashes, c.hashes...)
	}
	if e := ix.entries[id]; e != nil {
		if e.UID != "" {
			apiKeys = append(apiKeys, e.APIKeyFacts)
		}
		if e.hashSide != nil {
			hashes = append(hashes, e.hashSide)
		}
	}
	return apiKeys, hashes
}

// claimAPIKeyLocked makes the APIKey name claim key ID id with facts f, or
// stop claiming it when f is nil, and rebuilds the entry.
func (ix *Index) claimAPIKeyLocked(id string, name types.NamespacedName, f *APIKeyFacts, changed *[]string) {
	var apiKeyBuf [1]*APIKeyFacts
	var hashBuf [1]*HashFacts
	apiKeys, hashes := ix.claimantsLocked(id, apiKeyBuf[:0], hashBuf[:0])
	var holder *APIKeyFacts
	if len(apiKeys) > 0 {
		holder = apiKeys[0]
	}
	i := slices.IndexFunc(apiKeys, func(a *APIKeyFacts) bool { return a.Name == name })
	switch {
	case i >= 0 && f != nil:
		apiKeys[i] = f
	case i >= 0:
		apiKeys = slices.Delete(apiKeys, i, i+1)
	case f != nil:
		apiKeys = append(apiKeys, f)
	}
	if len(apiKeys) > 1 {
		slices.SortFunc(apiKeys, apiKeyClaimOrder)
	}
	ix.settleLocked(id, apiKeys, hashes, changed)

	switch {
	case i < 0 && f != nil && len(apiKeys) > 1:
		// A new claimant: refused, or, created earlier than the holder
		// (the watch delivered them out of order), taking its place.
		refused := f
		if apiKeys[0] == f {
			refused = holder
		}
		ix.warnLocked("Refused an APIKey claiming a key ID another APIKey holds",
			"prefix", keys.DisplayPrefixOf(id), "apikey", apiKeys[0].Name.String(), "refused", refused.Name.String())
	case i >= 0 && f == nil && holder.Name == name && len(apiKeys) > 0:
		ix.warnLocked("Handed a key ID to its next claimant after its holder went away",
			"prefix", keys.DisplayPrefixOf(id), "apikey", apiKeys[0].Name.String(), "previous", name.String())
	}
}

// claimHashLocked makes the hash Secret uid claim key ID id with facts f,
// or stop claiming it when f is nil, and rebuilds the entry.
func (ix *Index) claimHashLocked(id string, uid types.UID, f *HashFacts, changed *[]string) {
	var apiKeyBuf [1]*APIKeyFacts
	var hashBuf [1]*HashFacts
	apiKeys, hashes := ix.claimantsLocked(id, apiKeyBuf[:0], hashBuf[:0])
	var used *HashFacts
	if len(hashes) > 0 {
		used = hashes[0]
	}
	i := slices.IndexFunc(hashes, func(h *HashFacts) bool { return h.SecretUID == uid })
	switch {
	case i >= 0 && f != nil:
		hashes[i] = f
	case i >= 0:
		hashes = slices.Delete(hashes, i, i+1)
	case f != nil:
		hashes = append(hashes, f)
	}
	ix.settleLocked(id, apiKeys, hashes, changed)

	if i < 0 && f != nil && len(hashes) > 1 {
		refused := f
		if hashes[0] == f {
			refused = used
		}
		holder := ""
		if len(apiKeys) > 0 {
			holder = apiKeys[0].Name.String()
		}
		ix.warnLocked("Refused a hash Secret claiming a key ID another hash Secret holds",
			"prefix", keys.DisplayPrefixOf(id), "apikey", holder, "hashSecretUID", string(hashes[0].SecretUID),
			"refusedSecretUID", string(refused.SecretUID), "refusedForAPIKeyUID", string(refused.APIKeyUID))
	}
}

// settleLocked puts the claimants of key ID id in order, records them
// (in contested only if there is more than one of a kind) and rebuilds the
// entry from the first of each.
func (ix *Index) settleLocked(id string, apiKeys []*APIKeyFacts, hashes []*HashFacts, changed *[]string) {
	var holder *APIKeyFacts
	if len(apiKeys) > 0 {
		holder = apiKeys[0]
	}
	if len(hashes) > 1 {
		// The holder's own hash first: it is the only one that counts.
		own := func(h *HashFacts) bool { return holder != nil && h.APIKeyUID == holder.UID }
		slices.SortFunc(hashes, func(a, b *HashFacts) int {
			if aOwn, bOwn := own(a), own(b); aOwn != bOwn {
				if aOwn {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.SecretUID, b.SecretUID)
		})
	}
	if len(apiKeys) > 1 || len(hashes) > 1 {
		ix.contested[id] = &claimants{apiKeys: slices.Clone(apiKeys), hashes: slices.Clone(hashes)}
	} else {
		delete(ix.contested, id)
	}
	var h *HashFacts
	if len(hashes) > 0 {
		h = hashes[0]
	}
	ix.rejoinLocked(id, holder, h, changed)
}

// apiKeyClaimOrder orders the APIKeys claiming one key ID: the earliest
// created first, then the lowest UID. creationTimestamp is set by the API
// server, so no APIKey made after a key was issued can sort before it.
func apiKeyClaimOrder(a, b *APIKeyFacts) int {
	if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
		return c
	}
	return cmp.Compare(a.UID, b.UID)
}

// warnLocked queues a warning for change to log after the lock.
func (ix *Index) warnLocked(msg string, args ...any) {
	ix.warnings = append(ix.warnings, warning{msg, args})
}
