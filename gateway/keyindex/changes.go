package keyindex

import (
	"slices"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Changes relayed between replicas (gateway/relay), as revocations are
// (refusals.go; docs/design.md, section 14.4).
//
// A replica whose API server watch has gone silent would otherwise keep
// serving a key as it was before a change: the secret a rotation replaced
// past its grace period (as the key's current secret, never having heard
// of the rotation), the old expiry, the old models, limits and budget. So
// a replica that applies such a change from its own watch tells its peers
// (OnAPIKeyChange), with the APIKey itself, and a peer applies it here
// (ApplyRelayed) as if its own watch had delivered it: the same facts,
// through the same path. A relay only updates the incarnation (UID) the
// index holds, and only forward: facts at a resource version the index
// has passed are ignored, and once a relayed version is in, no older
// watch event or list replaces it (setAPIKeyLocked): the stalled watch,
// resuming, delivers the changes before it first. The index otherwise
// takes the watch's order as the truth, resource versions aside.

// maxAhead bounds the relayed versions held: one per relayed change until
// the watch reaches it. Past it, those of APIKeys the index does not hold
// (any more) are dropped first, then relays are ignored (the watch still
// brings them).
const maxAhead = 1 << 16

// OnAPIKeyChange sets the function called, outside the lock, with every
// APIKey whose change to what its key may do (changesWhatItMay) the index
// applies from its own watches, reduced to what the index reads
// (RelayedAPIKey). Never one heard from a peer, never one in a full list.
// Set it before the index is fed.
func (ix *Index) OnAPIKeyChange(f func(*gatewayv1alpha1.APIKey)) {
	ix.mu.Lock()
	ix.onAPIKeyChange = f
	ix.mu.Unlock()
}

// ApplyRelayed applies an APIKey a peer's watch delivered. It reports
// whether it changed anything: false when the index does not hold that
// incarnation of the APIKey (a key it does not know gets no hash from a
// relay either) or already holds its resource version or a newer one.
func (ix *Index) ApplyRelayed(k *gatewayv1alpha1.APIKey) bool {
	f := APIKeyFactsOf(k)
	if f.UID == "" || f.ResourceVersion == 0 {
		return false
	}
	applied := false
	ix.change(func(changed *[]string) {
		old := ix.apiKeys[f.Name]
		if old == nil || old.UID != f.UID || old.ResourceVersion >= f.ResourceVersion {
			return
		}
		if _, held := ix.ahead[f.UID]; !held && len(ix.ahead) >= maxAhead {
			for uid, a := range ix.ahead {
				if cur := ix.apiKeys[a.name]; cur == nil || cur.UID != uid {
					delete(ix.ahead, uid)
				}
			}
			if len(ix.ahead) >= maxAhead {
				return
			}
		}
		if applied = ix.setAPIKeyLocked(&f, changed); applied {
			ix.ahead[f.UID] = relayedVersion{f.Name, f.ResourceVersion}
		}
	})
	return applied
}

// behindRelayLocked reports whether f is older than a version of its
// incarnation a peer relayed; once the watch has reached that version, the
// relay is forgotten.
func (ix *Index) behindRelayLocked(f *APIKeyFacts) bool {
	a, ok := ix.ahead[f.UID]
	if !ok || f.UID == "" {
		return false
	}
	if f.ResourceVersion != 0 && f.ResourceVersion < a.rv {
		return true
	}
	delete(ix.ahead, f.UID)
	return false
}

// relayedVersion is the version of an APIKey a relayed change brought.
type relayedVersion struct {
	name types.NamespacedName
	rv   uint64
}

// changesWhatItMay reports whether f, replacing old, changes what the
// APIKey's key may do: its secrets (a rotation), the end of a replaced
// secret's grace, its expiry, its phase or its policy. Usage, last-use
// times and names do not count: they change all the time and decide
// nothing a stalled replica gets wrong. Revocations and deletions are
// relayed as such (refusals.go).
func changesWhatItMay(old, f *APIKeyFacts) bool {
	if old == nil || old.UID != f.UID || f.Revoked || f.Deleting {
		return false
	}
	return old.KeyID != f.KeyID || old.PreviousKeyID != f.PreviousKeyID ||
		!old.PreviousExpiresAt.Equal(f.PreviousExpiresAt) || !old.ExpiresAt.Equal(f.ExpiresAt) ||
		old.Phase != f.Phase || !samePolicy(old.Policy, f.Policy)
}

// samePolicy compares what two policies allow, not the usage stored with
// them.
func samePolicy(a, b *Policy) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Models, b.Models) && equality.Semantic.DeepEqual(a.Limits, b.Limits) &&
		equality.Semantic.DeepEqual(a.Budget, b.Budget)
}

// RelayedAPIKey is k reduced to what APIKeyFactsOf reads: the metadata the
// index keeps, the spec and the status, without labels, annotations or
// managed fields.
func RelayedAPIKey(k *gatewayv1alpha1.APIKey) *gatewayv1alpha1.APIKey {
	return &gatewayv1alpha1.APIKey{
		TypeMeta: metav1.TypeMeta{APIVersion: gatewayv1alpha1.GroupVersion.String(), Kind: "APIKey"},
		ObjectMeta: metav1.ObjectMeta{
			Namespace: k.Namespace, Name: k.Name, UID: k.UID, ResourceVersion: k.ResourceVersion,
			CreationTimestamp: k.CreationTimestamp, DeletionTimestamp: k.DeletionTimestamp,
		},
		Spec:   *k.Spec.DeepCopy(),
		Status: *k.Status.DeepCopy(),
	}
}
