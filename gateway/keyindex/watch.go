package keyindex

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"unique"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// Watch is one set of reflectors that keep an Index current: APIKeys in
// the watched namespaces (all when none are given) and, in the system
// namespace only, Secrets of the hash type. The gateway faces the
// internet; it never lists or caches any other Secret.
type Watch struct {
	reflectors []*toolscache.Reflector
	stores     []*store
	apiKeys    []*apiKeyStore
	ix         *Index
	fetch      FetchFunc
	// fastStarts list APIKeys in the background (listing.go); only the
	// first Watch of an empty index has any.
	fastStarts []*fastStart
}

// Clients are what a Watch lists and watches with; build them once and
// share them between Watches.
type Clients struct {
	apiKeys, secrets rest.Interface
	// apiKeyReads reads single APIKeys while a starting gateway lists them
	// (listing.go), under a rate limit of its own: a new replica of a
	// rollout meets a key it has not listed yet on most of its first
	// requests, a few hundred a second, and the gateway's shared limit
	// (--kube-api-qps) would queue them for seconds behind each other.
	apiKeyReads rest.Interface
}

// apiKeyReadQPS bounds single APIKey reads: one per key in use, and only
// until the APIKeys are listed.
const apiKeyReadQPS = 1000

// NewClients builds the REST clients of APIKeys (JSON, as for every custom
// resource) and Secrets (protobuf).
//
// They ask for uncompressed responses: a full list at 100,000 keys is over
// 200 MB of JSON, and gzipping it cost the API server seconds of CPU (and
// the gateway a second to inflate) on a link that is never the bottleneck
// between pods of one cluster.
func NewClients(cfg *rest.Config, scheme *runtime.Scheme) (*Clients, error) {
	cfg = rest.CopyConfig(cfg)
	cfg.DisableCompression = true
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client for watches: %w", err)
	}
	codecs := serializer.NewCodecFactory(scheme)
	apiKeys, err := apiutil.RESTClientForGVK(gatewayv1alpha1.GroupVersion.WithKind("APIKey"), false, false, cfg, codecs, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating APIKey client: %w", err)
	}
	secrets, err := apiutil.RESTClientForGVK(corev1.SchemeGroupVersion.WithKind("Secret"), false, false, cfg, codecs, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating Secret client: %w", err)
	}
	readCfg := rest.CopyConfig(cfg)
	readCfg.QPS, readCfg.Burst, readCfg.RateLimiter = apiKeyReadQPS, apiKeyReadQPS, nil
	apiKeyReads, err := apiutil.RESTClientForGVK(gatewayv1alpha1.GroupVersion.WithKind("APIKey"), false, false, readCfg, codecs, httpClient)
	if err != nil {
		return nil, fmt.Errorf("creating APIKey read client: %w", err)
	}
	return &Clients{apiKeys: apiKeys, secrets: secrets, apiKeyReads: apiKeyReads}, nil
}

// maxNamespaceWatches is the most namespaces watched one by one.
const maxNamespaceWatches = 16

// NewWatch prepares the reflectors that feed ix; onEvent, if set, is
// called on every event. Nothing runs until Run.
//
// When ix holds no APIKeys yet (a gateway starting), the Watch starts
// fast: it is synced once it holds every hash and its APIKey watches are
// open, and lists the APIKeys in the background (listing.go).
func NewWatch(c *Clients, ix *Index, systemNamespace string, namespaces []string, onEvent func()) *Watch {
	w := &Watch{fetch: c.fetchAPIKey}
	fast := ix.holdsNoAPIKeys()
	add := func(name string, lw toolscache.ListerWatcher, expected runtime.Object, s toolscache.ReflectorStore, st *store) {
		w.reflectors = append(w.reflectors, toolscache.NewReflectorWithOptions(lw, expected, s, toolscache.ReflectorOptions{Name: name}))
		w.stores = append(w.stores, st)
	}
	// Restricted to some namespaces, the gateway also watches only the hash
	// Secrets of their keys, by the label the manager gives every hash
	// Secret: a gateway for 100 of 100,000 keys need not hold 100,000
	// hashes.
	hashSelector := labels.Everything()
	if len(namespaces) > 0 {
		// Namespace names are valid label values (the gateway checks them
		// at start); were one not, all hash Secrets would be watched.
		if req, err := labels.NewRequirement(gatewayv1alpha1.LabelAPIKeyNamespace, selection.In, namespaces); err == nil {
			hashSelector = labels.NewSelector().Add(*req)
		}
	}
	// One watch per namespace, up to maxNamespaceWatches of them; past
	// that, one watch of all namespaces whose store keeps only the wanted
	// ones. A hundred watches on the API server's one HTTP/2 connection
	// stalled: lists waited on streams the watches held.
	var only map[string]bool
	if len(namespaces) == 0 || len(namespaces) > maxNamespaceWatches {
		if len(namespaces) > 0 {
			only = map[string]bool{}
			for _, ns := range namespaces {
				only[ns] = true
			}
		}
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		s := &apiKeyStore{store: store{ix: ix, onEvent: onEvent}, namespace: ns, only: only, onComplete: w.apiKeyListComplete}
		lw := newFactsListWatch(c.apiKeys, "apikeys", ns, fields.Everything(), labels.Everything(),
			func() runtime.Object { return &gatewayv1alpha1.APIKey{} }, reduceAPIKey)
		if fast {
			w.fastStarts = append(w.fastStarts, newFastStart(lw, s, ix.log))
		}
		add("apikeys "+cmp.Or(ns, "(all namespaces)"), lw, &gatewayv1alpha1.APIKey{}, s, &s.store)
		w.apiKeys = append(w.apiKeys, s)
	}
	hashes := &hashStore{store{ix: ix, onEvent: onEvent}}
	lw := newFactsListWatch(c.secrets, "secrets", systemNamespace, fields.OneTermEqualSelector("type", gatewayv1alpha1.HashSecretType), hashSelector,
		func() runtime.Object { return &corev1.Secret{} }, hashes.reduce)
	add("hash secrets", lw, &corev1.Secret{}, hashes, &hashes.store)
	w.ix = ix
	return w
}

// Run runs the reflectors, and any background lists, until ctx ends and
// they have stopped: after Run returns, this Watch writes nothing more to
// the index.
func (w *Watch) Run(ctx context.Context) {
	if len(w.fastStarts) > 0 {
		w.ix.beginListing(w.fetch)
	}
	var wg sync.WaitGroup
	for _, r := range w.reflectors {
		wg.Go(func() { r.RunWithContext(ctx) })
	}
	for _, f := range w.fastStarts {
		wg.Go(func() { f.listInBackground(ctx, w.Synced) })
	}
	wg.Wait()
}

// Listed reports whether every APIKey this Watch watches is in the index
// (Synced may come first: see listing.go).
func (w *Watch) Listed() bool {
	for _, s := range w.apiKeys {
		if !s.complete.Load() {
			return false
		}
	}
	return true
}

// apiKeyListComplete ends the index's listing state once every APIKey
// watch has listed in full, from a background list or a relist.
func (w *Watch) apiKeyListComplete() {
	if w.Listed() {
		w.ix.endListing()
	}
}

// Synced reports whether every reflector's first full list is in the
// index: a gateway that called itself ready before would refuse keys it is
// about to know.
func (w *Watch) Synced() bool {
	for _, s := range w.stores {
		if !s.synced.Load() {
			return false
		}
	}
	return true
}

// reduceAPIKey and reduceHashSecret turn a listed object into its facts.
func reduceAPIKey(o runtime.Object) (any, bool) {
	k, ok := o.(*gatewayv1alpha1.APIKey)
	if !ok {
		return nil, false
	}
	f := APIKeyFactsOf(k)
	return &f, true
}

func reduceHashSecret(o runtime.Object) (any, bool) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return nil, false
	}
	f, ok := HashFactsOf(s)
	return &f, ok
}

// APIKeyFactsOf extracts what the gateway keeps of an APIKey. Strings
// that many keys share (namespace, owner, phase) are interned.
func APIKeyFactsOf(k *gatewayv1alpha1.APIKey) APIKeyFacts {
	f := APIKeyFacts{
		Name:            types.NamespacedName{Namespace: intern(k.Namespace), Name: k.Name},
		UID:             k.UID,
		ResourceVersion: resourceVersionNumber(k.ResourceVersion),
		Owner:           intern(k.Spec.Owner),
		Prefix:          k.Status.Prefix,
		DisplayName:     k.Spec.DisplayName,
		Revoked:         k.Spec.Revoked,
		Deleting:        k.DeletionTimestamp != nil,
		Phase:           gatewayv1alpha1.Phase(intern(string(k.Status.Phase))),
		CreatedAt:       k.CreationTimestamp.Time,
	}
	if id, ok := strings.CutPrefix(k.Status.Prefix, keys.Prefix); ok && keys.ValidID(id) {
		f.KeyID = id
	}
	if p := k.Status.Previous; p != nil {
		if id, ok := strings.CutPrefix(p.Prefix, keys.Prefix); ok && keys.ValidID(id) {
			f.PreviousKeyID, f.PreviousPrefix, f.PreviousExpiresAt = id, p.Prefix, p.ExpiresAt.Time
			if p.LastUsedAt != nil {
				f.PreviousLastUsedAt = p.LastUsedAt.Time
			}
		}
	}
	pending := k.Status.Phase == "" || k.Status.Phase == gatewayv1alpha1.PhasePending
	f.AwaitingRevealKey = pending && k.Spec.RevealPublicKey == "" && !k.Spec.Revoked
	if t := k.ResolvedExpiry(); t != nil {
		f.ExpiresAt = t.Time
	}
	if k.Status.LastUsedAt != nil {
		f.LastUsedAt = k.Status.LastUsedAt.Time
	}
	if k.Status.RevokedAt != nil {
		f.RevokedAt = k.Status.RevokedAt.Time
	}
	f.RefusalWrittenAt = refusalWrittenAt(k)
	if k.Spec.HasPolicy() {
		p := &Policy{Limits: k.Spec.Limits, Budget: k.Spec.Budget, Usage: k.Status.Usage}
		for _, m := range k.Spec.Models {
			p.Models = append(p.Models, string(m))
		}
		f.Policy = p
	}
	return f
}

// HashFactsOf extracts and parses the hash of a hash Secret; false when the
// Secret is not a usable hash Secret (which then authenticates nothing).
func HashFactsOf(s *corev1.Secret) (HashFacts, bool) {
	id := s.Labels[gatewayv1alpha1.LabelKeyID]
	if s.Type != gatewayv1alpha1.HashSecretType || !keys.ValidID(id) {
		return HashFacts{}, false
	}
	phc, err := keys.ParsePHC(string(s.Data[gatewayv1alpha1.HashSecretKey]))
	if err != nil {
		return HashFacts{}, false
	}
	f := HashFacts{SecretUID: s.UID, KeyID: id, APIKeyUID: types.UID(s.Labels[gatewayv1alpha1.LabelAPIKeyUID]), Hash: phc}
	if c, err := keys.ParseQuickCheck(string(s.Data[gatewayv1alpha1.HashSecretQuickCheckKey])); err == nil {
		f.QuickCheck, f.HasQuickCheck = c, true
	}
	return f, true
}

// intern returns the canonical copy of s, so 100,000 keys in 100
// namespaces hold 100 namespace strings, not 100,000.
func intern(s string) string { return unique.Make(s).Value() }
