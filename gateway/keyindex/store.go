package keyindex

import (
	"fmt"
	"slices"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// The index is the store of the gateway's reflectors: each object a watch
// delivers is turned into its facts at once and the object is dropped. An
// informer would keep every object in a store of its own and hand it to
// handlers through a queue: twice the memory, and readiness that lags the
// list by the queue's length.

// replaceChunk bounds how many objects a relist applies per hold of the
// write lock, so authentication never waits long behind a relist of
// 100,000 keys.
const replaceChunk = 512

// store is the part of toolscache.ReflectorStore the two stores share.
type store struct {
	ix      *Index
	onEvent func()
	synced  atomic.Bool // the first full list is in the index
}

func (s *store) touch() {
	if s.onEvent != nil {
		s.onEvent()
	}
}

// Resync has nothing to do: the index has no handlers to replay to.
func (s *store) Resync() error { return nil }

// UpdateResourceVersion is called by the reflector for every watch event
// and every bookmark (which the reflector asks the API server for): a
// quiet watch is still heard from, so onEvent measures whether the API
// server is still talking to this replica, not whether keys change.
func (s *store) UpdateResourceVersion(string) { s.touch() }

// apiKeyStore receives one APIKey watch: all namespaces when namespace is
// "", else that namespace only (a relist then replaces only its keys).
// When only is set, keys of other namespaces are ignored.
type apiKeyStore struct {
	store
	namespace string
	only      map[string]bool
	// generation counts Replaces: a background list (faststart.go) merges
	// only into the generation it was started for.
	generation atomic.Uint64
	// fastList: the list Replace is about to receive is a fast start's
	// empty one, not a full list.
	fastList atomic.Bool
	// complete: every APIKey of this watch has been listed.
	complete   atomic.Bool
	onComplete func()
}

// wants reports whether the store keeps keys of namespace ns.
func (s *apiKeyStore) wants(ns string) bool { return s.only == nil || s.only[ns] }

var _ toolscache.ReflectorStore = &apiKeyStore{}

func (s *apiKeyStore) Add(obj any) error { return s.Update(obj) }

func (s *apiKeyStore) Update(obj any) error {
	k, ok := obj.(*gatewayv1alpha1.APIKey)
	if !ok {
		return fmt.Errorf("APIKey watch delivered a %T", obj)
	}
	if s.wants(k.Namespace) {
		f := APIKeyFactsOf(k)
		s.ix.setWatchedAPIKey(&f, k)
	}
	// Noted for keys of namespaces this gateway does not serve too: it
	// refuses those anyway, and a waiter needs to see the version pass.
	s.ix.applied.note(s.namespace, resourceVersionNumber(k.ResourceVersion), k.Spec.Revoked || k.DeletionTimestamp != nil)
	s.touch()
	return nil
}

func (s *apiKeyStore) Delete(obj any) error {
	k, ok := obj.(*gatewayv1alpha1.APIKey)
	if !ok {
		return fmt.Errorf("APIKey watch delivered a %T", obj)
	}
	if s.wants(k.Namespace) {
		name := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
		s.ix.deleteWatchedAPIKey(name, resourceVersionNumber(k.ResourceVersion))
	}
	s.ix.applied.note(s.namespace, resourceVersionNumber(k.ResourceVersion), true)
	s.touch()
	return nil
}

// Replace makes the index's APIKeys of this watch exactly list: what the
// list lacks was deleted while nobody watched.
func (s *apiKeyStore) Replace(list []any, resourceVersion string) error {
	facts, err := collectFacts[*APIKeyFacts](list, reduceAPIKey)
	if err != nil {
		return err
	}
	facts = slices.DeleteFunc(facts, func(f *APIKeyFacts) bool { return !s.wants(f.Name.Namespace) })
	// A background list still running is superseded from here on.
	s.generation.Add(1)
	listedAt := resourceVersionNumber(resourceVersion)
	replaceAll(s.ix, facts, func(f *APIKeyFacts) types.NamespacedName { return f.Name },
		func(f *APIKeyFacts, changed *[]string) { s.ix.setAPIKeyLocked(f, changed) },
		func(listed map[types.NamespacedName]struct{}, changed *[]string) {
			for name := range s.ix.apiKeys {
				if _, ok := listed[name]; !ok && (s.namespace == "" || name.Namespace == s.namespace) {
					s.ix.deleteAPIKeyAtLocked(name, listedAt, changed)
				}
			}
		})
	// The list is the state at listedAt: every change up to it is in,
	// the fast start's empty list included (its watch opens there, and
	// the index reads any APIKey it does not hold yet from the API server
	// until the background list is in).
	s.ix.applied.note(s.namespace, listedAt, true)
	s.synced.Store(true)
	if !s.fastList.Swap(false) {
		s.markComplete()
	}
	s.touch()
	return nil
}

// merge adds a background list of this watch's APIKeys to the index,
// unless a Replace has come since generation gen began; it reports whether
// it did. Facts older than the index's are left out (see listing.go).
func (s *apiKeyStore) merge(facts []*APIKeyFacts, gen uint64) bool {
	for chunk := range slices.Chunk(facts, replaceChunk) {
		superseded := false
		s.ix.change(func(changed *[]string) {
			if superseded = s.generation.Load() != gen; superseded {
				return
			}
			for _, f := range chunk {
				if s.wants(f.Name.Namespace) {
					s.ix.setAPIKeyLocked(f, changed)
				}
			}
		})
		if superseded {
			return false
		}
	}
	s.touch()
	return true
}

func (s *apiKeyStore) markComplete() {
	if !s.complete.Swap(true) && s.onComplete != nil {
		s.onComplete()
	}
}

// hashStore receives the watch of hash Secrets in the system namespace.
type hashStore struct{ store }

var _ toolscache.ReflectorStore = &hashStore{}

func (s *hashStore) Add(obj any) error { return s.Update(obj) }

func (s *hashStore) Update(obj any) error {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("secret watch delivered a %T", obj)
	}
	if f, ok := s.factsOf(sec); ok {
		s.ix.SetHash(f)
	} else {
		// No longer a usable hash Secret (relabelled): it authenticates
		// nothing from now on.
		s.ix.DeleteHash(sec.UID)
	}
	s.touch()
	return nil
}

func (s *hashStore) Delete(obj any) error {
	sec, ok := obj.(*corev1.Secret)
	if !ok {
		return fmt.Errorf("secret watch delivered a %T", obj)
	}
	s.ix.DeleteHash(sec.UID)
	s.touch()
	return nil
}

// factsOf is HashFactsOf, noting while the index lists APIKeys in the
// background which APIKey the hash Secret was written for.
func (s *hashStore) factsOf(sec *corev1.Secret) (HashFacts, bool) {
	f, ok := HashFactsOf(sec)
	if ok {
		s.ix.noteOwner(f.KeyID, types.NamespacedName{
			Namespace: sec.Labels[gatewayv1alpha1.LabelAPIKeyNamespace], Name: sec.Labels[gatewayv1alpha1.LabelAPIKeyName]})
	}
	return f, ok
}

// reduce turns a listed hash Secret into its facts.
func (s *hashStore) reduce(o runtime.Object) (any, bool) {
	sec, ok := o.(*corev1.Secret)
	if !ok {
		return nil, false
	}
	f, ok := s.factsOf(sec)
	return &f, ok
}

// Replace makes the index's hashes exactly list. Secrets that are not
// usable hash Secrets are left out of it, and so authenticate nothing.
func (s *hashStore) Replace(list []any, _ string) error {
	facts, err := collectFacts[*HashFacts](list, s.reduce)
	if err != nil {
		return err
	}
	replaceAll(s.ix, facts, func(f *HashFacts) types.UID { return f.SecretUID }, s.ix.setHashLocked,
		func(listed map[types.UID]struct{}, changed *[]string) {
			for uid := range s.ix.hashes {
				if _, ok := listed[uid]; !ok {
					s.ix.deleteHashLocked(uid, changed)
				}
			}
		})
	s.synced.Store(true)
	s.touch()
	return nil
}

// replaceAll applies a full list to the index: sweep first drops, given
// the keys listed, what the list lacks; then set records each item, in
// chunks of replaceChunk under the write lock (so authentication never
// waits long behind a relist of 100,000 keys). Deletions go first because
// they happened first: an object deleted while nobody watched and the one
// that replaced it (a hash Secret written anew) never count as two
// claimants of one key ID.
func replaceAll[F any, K comparable](ix *Index, facts []F, keyOf func(F) K, set func(F, *[]string), sweep func(listed map[K]struct{}, changed *[]string)) {
	listed := make(map[K]struct{}, len(facts))
	for _, f := range facts {
		listed[keyOf(f)] = struct{}{}
	}
	ix.change(func(changed *[]string) { sweep(listed, changed) })
	for chunk := range slices.Chunk(facts, replaceChunk) {
		ix.change(func(changed *[]string) {
			for _, f := range chunk {
				set(f, changed)
			}
		})
	}
}

// collectFacts takes the facts out of a list: facts a factsListWatch has
// already reduced, or objects reduced here (a list that did not come
// through one). Objects reduce drops are left out.
func collectFacts[F, O any](list []O, reduce func(runtime.Object) (any, bool)) ([]F, error) {
	out := make([]F, 0, len(list))
	for _, obj := range list {
		var facts any
		switch o := any(obj).(type) {
		case *listedFacts:
			facts = o.facts
		case runtime.Object:
			f, ok := reduce(o)
			if !ok {
				continue
			}
			facts = f
		default:
			return nil, fmt.Errorf("list delivered a %T", obj)
		}
		f, ok := facts.(F)
		if !ok {
			return nil, fmt.Errorf("list delivered %T where %T belongs", facts, *new(F))
		}
		out = append(out, f)
	}
	return out, nil
}
