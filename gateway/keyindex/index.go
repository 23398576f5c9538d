// Package keyindex is the gateway's view of every key: an in-memory index
// from key ID to what authentication needs, fed by watches on APIKeys and
// hash Secrets. It is the only state shared between requests, and no
// request ever waits on the API server for it.
//
// The index is also the watches' only store (see store.go): objects are
// reduced to the few facts the gateway reads as they arrive, and nothing
// else of them is kept. At 100,000 keys a cached APIKey and Secret pair
// costs about 3 KiB; the facts cost under 1 KiB.
package keyindex

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// Entry is an immutable snapshot of one key, joined from its APIKey and its
// hash Secret. A change to either source replaces the whole Entry, so a
// reader can hold one without locks.
type Entry struct {
	// APIKeyFacts is the APIKey side, shared with the index's own record
	// of it rather than copied. Never nil; only KeyID is set while only the
	// hash is known. The gateway acts on spec.revoked directly, so a
	// revocation takes effect as soon as its watch event arrives, before
	// the controller has even deleted the hash; and ExpiresAt is resolved
	// from spec, so the gateway enforces expiry even while the manager is
	// down.
	*APIKeyFacts

	// KeyID and Prefix are this entry's key's: the APIKey's current key
	// (APIKeyFacts.KeyID), or during a rotation's grace period its
	// previous key (Previous). They shadow the APIKey's on purpose, so
	// that whatever is done per key (the verified cache, in-flight
	// streams, last-use times, log lines) is done for the key the
	// request used.
	KeyID  string
	Prefix string

	// Hash is the parsed argon2id hash, nil until a hash Secret written for
	// this APIKey is seen.
	Hash *keys.PHC
	// HashUID identifies the hash Secret the Hash came from.
	HashUID types.UID
	// QuickCheck pre-filters secrets before argon2 (see keys.QuickCheck);
	// only when HasQuickCheck (hash Secrets written before it had none).
	QuickCheck    uint16
	HasQuickCheck bool

	// Version changes whenever anything that decides authentication
	// changes (not on lastUsedAt writes, which would otherwise force an
	// argon2 run per key per flush interval). A verified-key cache entry is
	// honoured only for the Version it was verified against.
	Version uint64

	// Previous: this entry is for the key a rotation replaced
	// (status.previous), which works until PreviousExpiresAt; the APIKey's
	// current key has an entry of its own under its own key ID.
	Previous bool

	// hashSide is the hash Secret claiming this key ID (the first in
	// claim order when several do), even one written for another
	// incarnation of the APIKey (which then sets no Hash).
	hashSide *HashFacts
}

// Usable reports why e cannot authenticate a request at now, or "" if it
// can: only a key whose status (gatewayv1alpha1.StatusOf, which the console
// and the CLI show) is Active, once its hash is here.
func (e *Entry) Usable(now time.Time) Reason {
	if e == nil {
		return ReasonUnknown
	}
	switch gatewayv1alpha1.StatusOf(e.Revoked, e.Deleting, e.Phase, e.ExpiresAt, now) {
	case gatewayv1alpha1.PhaseRevoked:
		return ReasonRevoked
	case gatewayv1alpha1.PhaseExpired:
		return ReasonExpired
	case gatewayv1alpha1.PhaseActive:
		if e.Hash == nil || e.UID == "" {
			return ReasonUnknown
		}
		if e.Previous && !now.Before(e.PreviousExpiresAt) {
			// The grace period is over, whether or not the controller has
			// deleted the hash yet.
			return ReasonExpired
		}
		return ""
	default:
		return ReasonUnknown
	}
}

// Reason says why a key was refused.
type Reason string

const (
	ReasonUnknown Reason = "unknown"
	ReasonRevoked Reason = "revoked"
	ReasonExpired Reason = "expired"
)

// APIKeyFacts is what the gateway keeps of an APIKey: what authentication
// decides on and what the console shows. Treat it as read-only: the index
// shares one value between its maps and the entries it hands out.
type APIKeyFacts struct {
	// Name names the resource; UID ties it to one incarnation of it.
	Name types.NamespacedName
	UID  types.UID
	// ResourceVersion is metadata.resourceVersion as a number (0 when it
	// is not one). While APIKeys are listed in the background (listing.go)
	// an older version of an APIKey never replaces a newer one.
	ResourceVersion uint64
	KeyID           string // from status.prefix; empty before the key is issued
	// PreviousKeyID is the key ID of status.previous: the key a rotation
	// replaced, which keeps working until PreviousExpiresAt. Empty
	// without one. The APIKey claims both key IDs meanwhile.
	PreviousKeyID      string
	PreviousPrefix     string
	PreviousExpiresAt  time.Time
	PreviousLastUsedAt time.Time
	Owner              string
	// Prefix is status.prefix, the part of the key shown everywhere.
	Prefix      string
	DisplayName string
	Revoked     bool
	// Deleting: metadata.deletionTimestamp is set. The APIKey lingers
	// until the controller's finalizer has removed its hash, which takes
	// as long as the manager is down; a deleted key is refused as revoked
	// meanwhile, by every gateway, as soon as the watch says so.
	Deleting bool
	// AwaitingRevealKey: no key exists yet because nobody has supplied the
	// public key it will be sealed to (spec.revealPublicKey); its owner
	// receives it with `kubectl apikey reveal`. For the console only.
	AwaitingRevealKey bool
	// Phase is status.phase as the controller last wrote it.
	Phase gatewayv1alpha1.Phase
	// ExpiresAt: zero means never.
	ExpiresAt time.Time
	// LastUsedAt is status.lastUsedAt as stored; the usage flusher only
	// writes newer times.
	LastUsedAt time.Time
	CreatedAt  time.Time
	RevokedAt  time.Time
	// RefusalWrittenAt is when the API server stored the revocation or
	// deletion that refuses the key (refusalWrittenAt); zero for a key
	// that is neither, or when nothing says.
	RefusalWrittenAt time.Time
	// Policy is the key's models, limits and budget with the usage stored
	// for it; nil for a key without any, which the gateway serves without
	// counting anything (docs/design.md, section 12.1).
	Policy *Policy
}

// Policy is what the gateway enforces for a key with a per-key policy.
type Policy struct {
	Models []string
	// Limits and Budget are nil when not set.
	Limits *gatewayv1alpha1.Limits
	Budget *gatewayv1alpha1.Budget
	// Usage is status.usage as stored: what the gateways had counted for
	// the current period when they last wrote it. A gateway that starts
	// resumes its counters from it.
	Usage *gatewayv1alpha1.Usage
}

// HashFacts is what the index keeps of a hash Secret.
type HashFacts struct {
	SecretUID types.UID
	KeyID     string
	APIKeyUID types.UID
	Hash      keys.PHC
	// QuickCheck is the key's 16-bit pre-filter (keys.QuickCheck), when
	// the hash Secret carries one (HasQuickCheck).
	QuickCheck    uint16
	HasQuickCheck bool
}

// Index joins APIKeys and hash Secrets by key ID.
type Index struct {
	mu      sync.RWMutex
	entries map[string]*Entry                     // key ID -> joined snapshot
	apiKeys map[types.NamespacedName]*APIKeyFacts // every APIKey, issued or not
	hashes  map[types.UID]*HashFacts              // hash Secret UID -> its facts
	// contested holds every claimant of the key IDs that more than one
	// APIKey or more than one hash Secret claims (see claims.go); it is
	// empty unless someone wrote a status or label by hand.
	contested map[string]*claimants
	versions  uint64
	// onChange are told, outside the lock, of every key ID that changed
	// (New's, then OnChange's, in order).
	onChange []func(keyID string)
	log      *slog.Logger
	// warnings wait here, under the lock, to be logged after it.
	warnings []warning
	// listing is set while the APIKeys are listed in the background
	// (listing.go); listed is closed once they are all in.
	listing *listing
	listed  chan struct{}
	// applied is how far the APIKey watches have brought the index
	// (applied.go).
	applied *applied
	// refused holds revocations relayed by peers, by APIKey UID, until
	// the watch catches up with them (refusals.go); relays wait here,
	// under the lock, for onRevocation after it.
	refused map[types.UID]Revocation
	// refusedAt is when a relayed refusal made the index refuse a key it
	// served, by APIKey UID, until the watch brings the facts that say
	// when the change was stored (confirmation.go). Its keys are a subset
	// of refused's.
	refusedAt    map[types.UID]time.Time
	relays       []Revocation
	onRevocation func(Revocation)
	// changeRelays wait here, under the lock, for onAPIKeyChange after it
	// (changes.go).
	changeRelays   []*gatewayv1alpha1.APIKey
	onAPIKeyChange func(*gatewayv1alpha1.APIKey)
	// ahead is the resource version of each APIKey incarnation a peer's
	// relayed change brought, until the watch reaches it (changes.go).
	ahead map[types.UID]relayedVersion
	// metrics, if set, times the refusals (confirmation.go).
	metrics *Metrics
}

// New returns an empty index. onChange, if set, is called (outside the
// lock) with the key ID of every entry that changed; a part built on the
// index later registers its own with OnChange.
func New(onChange func(keyID string)) *Index {
	ix := &Index{
		entries:   map[string]*Entry{},
		apiKeys:   map[types.NamespacedName]*APIKeyFacts{},
		hashes:    map[types.UID]*HashFacts{},
		contested: map[string]*claimants{},
		refused:   map[types.UID]Revocation{},
		refusedAt: map[types.UID]time.Time{},
		ahead:     map[types.UID]relayedVersion{},
		log:       slog.Default(),
		listed:    closedChannel(),
		applied:   newApplied(),
	}
	if onChange != nil {
		ix.onChange = []func(string){onChange}
	}
	return ix
}

// OnChange adds f to what is told, outside the lock, the key ID of every
// entry that changes from now on. A part that needs the index to be built
// and needs its changes (auth.New) registers itself as it is built, so no
// change reaches a part that does not exist yet.
func (ix *Index) OnChange(f func(keyID string)) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.onChange = append(slices.Clip(ix.onChange), f)
}

// SetLogger sets where the index reports key IDs claimed twice; call it
// before the index is fed. The default is slog.Default().
func (ix *Index) SetLogger(log *slog.Logger) {
	ix.mu.Lock()
	ix.log = log
	ix.mu.Unlock()
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

// APIKey returns what is known of the APIKey name (issued or not), or nil.
func (ix *Index) APIKey(name types.NamespacedName) *APIKeyFacts {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.apiKeys[name]
}

// APIKeys returns every APIKey known, in no order.
func (ix *Index) APIKeys() []*APIKeyFacts {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]*APIKeyFacts, 0, len(ix.apiKeys))
	for _, f := range ix.apiKeys {
		out = append(out, f)
	}
	return out
}

// SetAPIKey records the APIKey side of a key.
func (ix *Index) SetAPIKey(f APIKeyFacts) {
	ix.change(func(changed *[]string) { ix.setAPIKeyLocked(&f, changed) })
}

// DeleteAPIKey forgets an APIKey.
func (ix *Index) DeleteAPIKey(name types.NamespacedName) {
	ix.change(func(changed *[]string) { ix.deleteAPIKeyLocked(name, changed) })
}

// SetHash records the hash side of a key.
func (ix *Index) SetHash(f HashFacts) {
	ix.change(func(changed *[]string) { ix.setHashLocked(&f, changed) })
}

// DeleteHash forgets a hash Secret.
func (ix *Index) DeleteHash(secretUID types.UID) {
	ix.change(func(changed *[]string) { ix.deleteHashLocked(secretUID, changed) })
}

// change runs f under the write lock, then tells onChange about every key
// ID f changed and logs what f found wrong.
func (ix *Index) change(f func(changed *[]string)) {
	var changed []string
	ix.mu.Lock()
	f(&changed)
	warnings, log := ix.warnings, ix.log
	relays, onRevocation := ix.relays, ix.onRevocation
	changeRelays, onAPIKeyChange := ix.changeRelays, ix.onAPIKeyChange
	onChange := ix.onChange
	ix.warnings, ix.relays, ix.changeRelays = nil, nil, nil
	ix.mu.Unlock()
	for _, w := range warnings {
		log.Warn(w.msg, w.args...)
	}
	if onRevocation != nil {
		for _, r := range relays {
			onRevocation(r)
		}
	}
	if onAPIKeyChange != nil {
		for _, k := range changeRelays {
			onAPIKeyChange(k)
		}
	}
	for _, f := range onChange {
		for _, id := range changed {
			f(id)
		}
	}
}

// setAPIKeyLocked records f unless it is older than what the index holds
// while listing, or than a version of its incarnation a peer relayed
// (changes.go); it reports whether it did.
func (ix *Index) setAPIKeyLocked(f *APIKeyFacts, changed *[]string) bool {
	old := ix.apiKeys[f.Name]
	if ix.listing != nil && ix.listing.stale(f, old) {
		return false
	}
	if ix.behindRelayLocked(f) {
		return false
	}
	ix.putAPIKeyLocked(ix.underRefusalLocked(f), old, changed)
	return true
}

// putAPIKeyLocked replaces old, the facts the index holds of f's APIKey
// (or nil), with f.
func (ix *Index) putAPIKeyLocked(f, old *APIKeyFacts, changed *[]string) {
	ix.apiKeys[f.Name] = f
	if old != nil {
		// Re-keyed (rotated, or a grace period ended) or re-created under
		// the same name: the key IDs it no longer claims go.
		for _, id := range old.claimedKeyIDs() {
			if id != f.KeyID && id != f.PreviousKeyID {
				ix.claimAPIKeyLocked(id, old.Name, nil, changed)
			}
		}
	}
	for _, id := range f.claimedKeyIDs() {
		ix.claimAPIKeyLocked(id, f.Name, f, changed)
	}
}

func (ix *Index) deleteAPIKeyLocked(name types.NamespacedName, changed *[]string) {
	ix.deleteAPIKeyAtLocked(name, 0, changed)
}

// deleteAPIKeyAtLocked forgets an APIKey deleted at resource version rv
// (0 if unknown), which a background list then cannot bring back.
func (ix *Index) deleteAPIKeyAtLocked(name types.NamespacedName, rv uint64, changed *[]string) {
	if ix.listing != nil {
		ix.listing.deleted(name, rv)
	}
	old, ok := ix.apiKeys[name]
	if !ok {
		return
	}
	if r, ok := ix.refused[old.UID]; ok && rv >= r.ResourceVersion {
		ix.forgetRefusalLocked(old.UID) // the watch caught up with the relay
	}
	delete(ix.ahead, old.UID)
	delete(ix.apiKeys, name)
	for _, id := range old.claimedKeyIDs() {
		ix.claimAPIKeyLocked(id, name, nil, changed)
	}
}

// claimedKeyIDs are the key IDs the APIKey claims: its current key's and,
// during a rotation's grace period, its previous key's.
func (f *APIKeyFacts) claimedKeyIDs() []string {
	switch {
	case f.KeyID == "" && f.PreviousKeyID == "":
		return nil
	case f.PreviousKeyID == "" || f.PreviousKeyID == f.KeyID:
		return []string{f.KeyID}
	case f.KeyID == "":
		return []string{f.PreviousKeyID}
	default:
		return []string{f.KeyID, f.PreviousKeyID}
	}
}

func (ix *Index) setHashLocked(f *HashFacts, changed *[]string) {
	old := ix.hashes[f.SecretUID]
	ix.hashes[f.SecretUID] = f
	if old != nil && old.KeyID != f.KeyID {
		ix.claimHashLocked(old.KeyID, old.SecretUID, nil, changed)
	}
	ix.claimHashLocked(f.KeyID, f.SecretUID, f, changed)
}

func (ix *Index) deleteHashLocked(uid types.UID, changed *[]string) {
	old, ok := ix.hashes[uid]
	if !ok {
		return
	}
	delete(ix.hashes, uid)
	ix.claimHashLocked(old.KeyID, uid, nil, changed)
}

// rejoinLocked rebuilds the entry of key ID id from its two sides (either
// may be nil) and records id as changed.
func (ix *Index) rejoinLocked(id string, a *APIKeyFacts, h *HashFacts, changed *[]string) {
	*changed = append(*changed, id)
	if a == nil && h == nil {
		delete(ix.entries, id)
		return
	}
	e := &Entry{APIKeyFacts: a, hashSide: h}
	if a == nil {
		e.APIKeyFacts = &APIKeyFacts{KeyID: id}
	}
	e.KeyID, e.Prefix = id, keys.DisplayPrefixOf(id)
	e.Previous = a != nil && id != a.KeyID && id == a.PreviousKeyID
	// A hash counts only if it was written for this incarnation of the
	// APIKey: a hash Secret left over from a deleted APIKey must never
	// authenticate for a new one.
	if h != nil && (a == nil || h.APIKeyUID == a.UID) {
		e.Hash, e.HashUID = &h.Hash, h.SecretUID
		e.QuickCheck, e.HasQuickCheck = h.QuickCheck, h.HasQuickCheck
	}
	if old := ix.entries[id]; old != nil && sameDecision(old, e) {
		e.Version = old.Version
	} else {
		ix.versions++
		e.Version = ix.versions
	}
	ix.entries[id] = e
}

// sameDecision reports whether a and b authenticate exactly the same way.
// A previous key's entry also changes with the end of its grace period.
func sameDecision(a, b *Entry) bool {
	return a.UID == b.UID && a.HashUID == b.HashUID && a.Revoked == b.Revoked && a.Deleting == b.Deleting &&
		a.Phase == b.Phase && a.ExpiresAt.Equal(b.ExpiresAt) && a.Owner == b.Owner &&
		a.Previous == b.Previous && (!a.Previous || a.PreviousExpiresAt.Equal(b.PreviousExpiresAt))
}
