package keyindex

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/keys"
)

// CacheOptions selects what the gateway watches: APIKeys in the given
// namespaces (all when empty) and, in the system namespace only, Secrets of
// the hash type. The gateway faces the internet; it never lists or caches
// any other Secret. Objects are trimmed to what the index and console read
// before they are stored, to keep memory per key small.
func CacheOptions(systemNamespace string, namespaces []string) cache.Options {
	o := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}: {
				Namespaces: map[string]cache.Config{systemNamespace: {}},
				Field:      fields.OneTermEqualSelector("type", gatewayv1alpha1.HashSecretType),
				Transform:  trimHashSecret,
			},
			&gatewayv1alpha1.APIKey{}: {Transform: trimAPIKey},
		},
	}
	if len(namespaces) > 0 {
		o.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range namespaces {
			o.DefaultNamespaces[ns] = cache.Config{}
		}
		// The system namespace always holds the console's keys.
		o.DefaultNamespaces[systemNamespace] = cache.Config{}
	}
	return o
}

// Watch keeps ix current from the cache's informers. Call it before the
// cache starts so the initial list is indexed too. synced reports when the
// handlers have indexed everything of the initial lists: the informers'
// own sync says only that their stores are filled, and the handlers run
// behind them (seconds behind at 100,000 keys), so a gateway that called
// itself ready then would refuse keys it is about to know.
func Watch(ctx context.Context, c cache.Cache, ix *Index, onEvent func()) (synced func() bool, err error) {
	keyInformer, err := c.GetInformer(ctx, &gatewayv1alpha1.APIKey{})
	if err != nil {
		return nil, fmt.Errorf("watching APIKeys: %w", err)
	}
	keys, err := keyInformer.AddEventHandler(handler(onEvent,
		func(o any) {
			if k, ok := o.(*gatewayv1alpha1.APIKey); ok {
				ix.SetAPIKey(APIKeyFactsOf(k))
			}
		},
		func(o any) {
			if k, ok := o.(*gatewayv1alpha1.APIKey); ok {
				ix.DeleteAPIKey(types.NamespacedName{Namespace: k.Namespace, Name: k.Name})
			}
		}))
	if err != nil {
		return nil, err
	}
	secretInformer, err := c.GetInformer(ctx, &corev1.Secret{})
	if err != nil {
		return nil, fmt.Errorf("watching hash Secrets: %w", err)
	}
	hashes, err := secretInformer.AddEventHandler(handler(onEvent,
		func(o any) {
			if s, ok := o.(*corev1.Secret); ok {
				if f, ok := HashFactsOf(s); ok {
					ix.SetHash(f)
				} else {
					ix.DeleteHash(s.UID)
				}
			}
		},
		func(o any) {
			if s, ok := o.(*corev1.Secret); ok {
				ix.DeleteHash(s.UID)
			}
		}))
	if err != nil {
		return nil, err
	}
	return func() bool { return keys.HasSynced() && hashes.HasSynced() }, nil
}

func handler(onEvent func(), set, del func(any)) toolscache.ResourceEventHandlerFuncs {
	touch := func() {
		if onEvent != nil {
			onEvent()
		}
	}
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { set(o); touch() },
		UpdateFunc: func(_, o any) { set(o); touch() },
		DeleteFunc: func(o any) {
			if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
				o = t.Obj
			}
			del(o)
			touch()
		},
	}
}

// APIKeyFactsOf extracts what the index needs from an APIKey.
func APIKeyFactsOf(k *gatewayv1alpha1.APIKey) APIKeyFacts {
	f := APIKeyFacts{
		Name:    types.NamespacedName{Namespace: k.Namespace, Name: k.Name},
		UID:     k.UID,
		Owner:   k.Spec.Owner,
		Prefix:  k.Status.Prefix,
		Revoked: k.Spec.Revoked,
		Phase:   k.Status.Phase,
	}
	if id, ok := strings.CutPrefix(k.Status.Prefix, keys.Prefix); ok && keys.ValidID(id) {
		f.KeyID = id
	}
	if t := k.ResolvedExpiry(); t != nil {
		f.ExpiresAt = t.Time
	}
	if k.Status.LastUsedAt != nil {
		f.LastUsedAt = k.Status.LastUsedAt.Time
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
	return HashFacts{SecretUID: s.UID, KeyID: id, APIKeyUID: types.UID(s.Labels[gatewayv1alpha1.LabelAPIKeyUID]), Hash: &phc}, true
}

// trimAPIKey drops what neither the index nor the console reads.
func trimAPIKey(o any) (any, error) {
	k, ok := o.(*gatewayv1alpha1.APIKey)
	if !ok {
		return o, nil
	}
	k.ManagedFields = nil
	k.Annotations = nil
	k.Labels = nil
	k.Finalizers = nil
	k.OwnerReferences = nil
	k.Status.Conditions = nil
	k.Status.HashSecretRef = nil
	k.Status.Reveal = nil
	return k, nil
}

// trimHashSecret keeps only the two labels the index joins on (key ID and
// APIKey UID) and the hash: at 100,000 keys every dropped byte counts.
func trimHashSecret(o any) (any, error) {
	s, ok := o.(*corev1.Secret)
	if !ok {
		return o, nil
	}
	s.ManagedFields = nil
	s.Annotations = nil
	s.OwnerReferences = nil
	keep := map[string]string{}
	for _, l := range []string{gatewayv1alpha1.LabelKeyID, gatewayv1alpha1.LabelAPIKeyUID} {
		if v, ok := s.Labels[l]; ok {
			keep[l] = v
		}
	}
	s.Labels = keep
	return s, nil
}
