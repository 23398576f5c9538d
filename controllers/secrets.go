package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/seal"
)

// keyIDField indexes cached hash Secrets by key ID for the uniqueness check.
const keyIDField = "codevector.keyID"

// apiKeyUIDField indexes cached hash Secrets by the UID of their APIKey:
// a label selector would scan every hash Secret of the system namespace.
const apiKeyUIDField = "codevector.apiKeyUID"

// errStaleCache means the cached APIKey is older than the API server's;
// the pass is retried shortly instead of acting on old data.
var errStaleCache = errors.New("cached APIKey is stale")

// errLeftovers means a pass that skipped looking for an interrupted
// issue's Secrets (a fresh key, see issue) found one in its way; the pass
// is retried, and that one looks.
var errLeftovers = errors.New("an earlier issue's Secrets are in the way")

// RevealMode says how the controller hands a new key to its owner.
type RevealMode string

const (
	// RevealSealed: a key is generated only once spec.revealPublicKey is
	// set, and its reveal Secret holds it sealed to that public key, so
	// nobody but the holder of the private key can read it.
	RevealSealed RevealMode = "sealed"
	// RevealPlain: a key without spec.revealPublicKey that its owner
	// created (the created-by annotation) is generated at once and its
	// reveal Secret holds the plaintext, readable during the reveal window
	// by anyone who may read Secrets in the namespace. A key created for
	// someone else waits for its owner's public key, as in RevealSealed;
	// keys that carry a public key are always sealed.
	RevealPlain RevealMode = "plain"
)

// createRevealSecret writes the one-shot Secret that hands k to its owner.
// With a public key in the spec it holds only k sealed to that key; the
// plaintext is written only for a key without one, in RevealPlain mode.
//
// pub is the public key to seal to: spec.revealPublicKey for the first
// key, spec.rotation.revealPublicKey for a rotated one. in is where the
// Secret goes (spec.rotation.revealIn): next to the APIKey, owned by it so
// it is collected with it; or, for the console, in the system namespace
// under a name derived from the APIKey's UID (no owner reference can cross
// namespaces: labels name the APIKey instead, and deleteRevealSecrets and
// the finalizer collect it).
//
// elsewhereIfTaken: a Secret already at the name is somebody else's, and
// the reveal goes under a generated name; else the AlreadyExists error is
// returned for the caller to look first (a fresh key's issue).
func (r *APIKeyReconciler) createRevealSecret(ctx context.Context, key *gatewayv1alpha1.APIKey, k keys.Key, pub string, in gatewayv1alpha1.RevealLocation, elsewhereIfTaken bool, ev *eventLog) (*corev1.Secret, error) {
	data := map[string][]byte{}
	if pub != "" {
		sealed, err := seal.Seal(pub, key.UID, k)
		if err != nil {
			return nil, fmt.Errorf("sealing the key of APIKey %s/%s: %w", key.Namespace, key.Name, err)
		}
		data[gatewayv1alpha1.RevealSecretSealedKey] = sealed
	} else {
		data[gatewayv1alpha1.RevealSecretPlainKey] = []byte(k.Reveal())
	}
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: key.Namespace,
			Name:      gatewayv1alpha1.RevealSecretName(key.Name),
			Labels:    map[string]string{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue},
		},
		Type: gatewayv1alpha1.RevealSecretType,
		Data: data,
	}
	if r.revealsInSystemNamespace(key, in) {
		s.Namespace, s.Name = r.SystemNamespace, gatewayv1alpha1.SystemRevealSecretName(string(key.UID))
		s.Labels[gatewayv1alpha1.LabelAPIKeyNamespace] = key.Namespace
		s.Labels[gatewayv1alpha1.LabelAPIKeyName] = key.Name
		s.Labels[gatewayv1alpha1.LabelAPIKeyUID] = string(key.UID)
	} else if err := controllerutil.SetControllerReference(key, s, r.Client.Scheme()); err != nil {
		return nil, fmt.Errorf("owning reveal Secret: %w", err)
	}
	err := r.Client.Create(ctx, s)
	if elsewhereIfTaken && apierrors.IsAlreadyExists(err) {
		// Our own reveal Secrets were deleted before this (discardUnissued,
		// discardUnrotated), so the name is held by a Secret someone else
		// made, which anyone who may create Secrets here can do. It must
		// not hold up an issue or a rotation (a leaked key would keep
		// working), and it is neither read nor deleted: the key is revealed
		// under a generated name, which status.reveal records for readers.
		taken := s.Name
		s.Name, s.GenerateName = "", taken+"-"
		if err = r.Client.Create(ctx, s); err == nil {
			ev.warning("RevealSecretNameTaken", "The Secret %s/%s is not this key's reveal Secret; the key is revealed through %s instead", s.Namespace, taken, s.Name)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("creating reveal Secret %s/%s: %w", s.Namespace, s.Name+s.GenerateName, err)
	}
	return s, nil
}

// revealsInSystemNamespace: the reveal Secret goes to the system namespace
// rather than next to key (which may be the same namespace: then it is
// written as any other, owned by key).
func (r *APIKeyReconciler) revealsInSystemNamespace(key *gatewayv1alpha1.APIKey, in gatewayv1alpha1.RevealLocation) bool {
	return in == gatewayv1alpha1.RevealInSystemNamespace && key.Namespace != r.SystemNamespace
}

// revealStatus is status.reveal for the reveal Secret s just written.
func (r *APIKeyReconciler) revealStatus(key *gatewayv1alpha1.APIKey, s *corev1.Secret, pub string) *gatewayv1alpha1.RevealStatus {
	expires := metav1.NewTime(s.CreationTimestamp.Add(r.RevealWindow))
	rs := &gatewayv1alpha1.RevealStatus{SecretName: s.Name, SecretUID: s.UID, ExpiresAt: &expires, State: gatewayv1alpha1.RevealPending,
		PublicKeyFingerprint: fingerprintOf(pub)}
	if s.Namespace != key.Namespace {
		rs.SecretNamespace = s.Namespace
	}
	return rs
}

// revealSecrets lists the reveal Secrets this controller wrote for key,
// whatever their name: labelled as ours, of the reveal type and controlled
// by this APIKey (its UID); and in the system namespace, where only the
// manager creates Secrets, those labelled with its UID (a console
// rotation's). Someone else's Secret at the reveal name is not among them.
// Nothing in them is read. From the cache, or from the API server when
// live (the cache may not have a Secret created a moment ago).
func (r *APIKeyReconciler) revealSecrets(ctx context.Context, key *gatewayv1alpha1.APIKey, live bool) ([]corev1.Secret, error) {
	managed := client.MatchingLabels{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue}
	var list corev1.SecretList
	if err := r.listSecrets(ctx, &list, live, client.InNamespace(key.Namespace), managed); err != nil {
		return nil, fmt.Errorf("listing the reveal Secrets of APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	reveals := slices.DeleteFunc(list.Items, func(s corev1.Secret) bool {
		return s.Type != gatewayv1alpha1.RevealSecretType || !metav1.IsControlledBy(&s, key)
	})
	if key.Namespace == r.SystemNamespace {
		return reveals, nil
	}
	var system corev1.SecretList
	// The cache by its UID index: a label selector would scan every hash
	// Secret of the system namespace, for every settled key's pass.
	var byUID client.ListOption = client.MatchingFields{apiKeyUIDField: string(key.UID)}
	if live {
		byUID = client.MatchingLabels{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue, gatewayv1alpha1.LabelAPIKeyUID: string(key.UID)}
	}
	if err := r.listSecrets(ctx, &system, live, client.InNamespace(r.SystemNamespace), byUID); err != nil {
		return nil, fmt.Errorf("listing the reveal Secrets of APIKey %s/%s in %s: %w", key.Namespace, key.Name, r.SystemNamespace, err)
	}
	for _, s := range system.Items {
		if s.Type == gatewayv1alpha1.RevealSecretType {
			reveals = append(reveals, s)
		}
	}
	return reveals, nil
}

// listSecrets lists from the cache, or from the API server when live.
func (r *APIKeyReconciler) listSecrets(ctx context.Context, list *corev1.SecretList, live bool, opts ...client.ListOption) error {
	if live {
		return r.APIReader.List(ctx, list, opts...)
	}
	return r.Client.List(ctx, list, opts...)
}

// deleteRevealSecrets deletes every reveal Secret of key (revealSecrets),
// unread.
func (r *APIKeyReconciler) deleteRevealSecrets(ctx context.Context, key *gatewayv1alpha1.APIKey, live bool) error {
	reveals, err := r.revealSecrets(ctx, key, live)
	if err != nil {
		return err
	}
	for i := range reveals {
		if err := r.deleteSecret(ctx, &reveals[i]); err != nil {
			return err
		}
	}
	return nil
}

// createHashSecret hashes k and stores the PHC string, immutable, in the
// system namespace with labels that name its APIKey and key ID, under name
// (HashSecretName for the first key, RotatedHashSecretName for a rotated
// one).
func (r *APIKeyReconciler) createHashSecret(ctx context.Context, key *gatewayv1alpha1.APIKey, k keys.Key, name string) error {
	phc, err := r.Hasher.Hash(ctx, k)
	if err != nil {
		return err
	}
	parsed, err := keys.ParsePHC(phc)
	if err != nil {
		return fmt.Errorf("reading back the hash of key %s: %w", k.DisplayPrefix(), err)
	}
	s := NewHashSecret(r.SystemNamespace, key, k, parsed)
	s.Name = name
	if err := r.Client.Create(ctx, s); err != nil {
		return fmt.Errorf("creating hash Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// NewHashSecret is the hash Secret of key, whose key is k and whose argon2id
// hash is phc, as the controller writes it: in the system namespace,
// immutable, labelled with the APIKey and the key ID, with the PHC string
// and the key's quick check. Exported so that benchmarks which write keys
// straight to the API server write exactly what the controller would.
func NewHashSecret(systemNamespace string, key *gatewayv1alpha1.APIKey, k keys.Key, phc keys.PHC) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: systemNamespace,
			Name:      gatewayv1alpha1.HashSecretName(string(key.UID)),
			Labels: map[string]string{
				gatewayv1alpha1.LabelManagedBy:       gatewayv1alpha1.ManagedByValue,
				gatewayv1alpha1.LabelKeyID:           k.ID(),
				gatewayv1alpha1.LabelAPIKeyNamespace: key.Namespace,
				gatewayv1alpha1.LabelAPIKeyName:      key.Name,
				gatewayv1alpha1.LabelAPIKeyUID:       string(key.UID),
			},
		},
		Type:      gatewayv1alpha1.HashSecretType,
		Immutable: ptr.To(true),
		Data: map[string][]byte{
			gatewayv1alpha1.HashSecretKey:           []byte(phc.String()),
			gatewayv1alpha1.HashSecretQuickCheckKey: []byte(keys.FormatQuickCheck(keys.QuickCheck(k, phc.Salt))),
		},
	}
}

// getLive reads a Secret from the API server; a missing Secret is (nil, nil).
func (r *APIKeyReconciler) getLive(ctx context.Context, namespace, name string) (*corev1.Secret, error) {
	s := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	return s, nil
}

// exists answers from the cache when it can. A cache miss is confirmed with
// the API server, because a Secret created a moment ago may not be cached
// yet and "gone" has consequences (reveal Consumed, key Failed).
func (r *APIKeyReconciler) exists(ctx context.Context, namespace, name string) (bool, error) {
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &corev1.Secret{})
	switch {
	case err == nil:
		return true, nil
	case !apierrors.IsNotFound(err):
		return false, fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	s, err := r.getLive(ctx, namespace, name)
	return s != nil, err
}

// deleteIfPresent deletes a Secret only when the cache has it, so passes
// over settled keys issue no writes.
func (r *APIKeyReconciler) deleteIfPresent(ctx context.Context, namespace, name string) error {
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &corev1.Secret{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading Secret %s/%s: %w", namespace, name, err)
	}
	return r.deleteByName(ctx, namespace, name)
}

func (r *APIKeyReconciler) deleteByName(ctx context.Context, namespace, name string) error {
	return r.deleteSecret(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})
}

func (r *APIKeyReconciler) deleteSecret(ctx context.Context, s *corev1.Secret) error {
	if err := r.Client.Delete(ctx, s); err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	return nil
}

// hashSecrets lists the hash Secrets written for this incarnation of key
// (by the UID label): the current key's, the previous key's during a grace
// period, and whatever an interrupted rotation left. From the cache, or
// from the API server when live (the cache may not have a Secret created
// a moment ago).
func (r *APIKeyReconciler) hashSecrets(ctx context.Context, key *gatewayv1alpha1.APIKey, live bool) ([]corev1.Secret, error) {
	var list corev1.SecretList
	var err error
	if live {
		err = r.APIReader.List(ctx, &list, client.InNamespace(r.SystemNamespace), client.MatchingLabels{gatewayv1alpha1.LabelAPIKeyUID: string(key.UID)})
	} else {
		err = r.Client.List(ctx, &list, client.InNamespace(r.SystemNamespace), client.MatchingFields{apiKeyUIDField: string(key.UID)})
	}
	if err != nil {
		return nil, fmt.Errorf("listing the hash Secrets of APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	return slices.DeleteFunc(list.Items, func(s corev1.Secret) bool { return s.Type != gatewayv1alpha1.HashSecretType }), nil
}

// deleteHashSecrets deletes every hash Secret of key: a retired or deleted
// APIKey ends its current and its previous key at once.
func (r *APIKeyReconciler) deleteHashSecrets(ctx context.Context, key *gatewayv1alpha1.APIKey, live bool) error {
	hashes, err := r.hashSecrets(ctx, key, live)
	if err != nil {
		return err
	}
	for i := range hashes {
		if err := r.deleteSecret(ctx, &hashes[i]); err != nil {
			return err
		}
	}
	// A hash Secret from before the UID label, by its name.
	if live {
		return r.deleteByName(ctx, r.SystemNamespace, gatewayv1alpha1.HashSecretName(string(key.UID)))
	}
	return r.deleteIfPresent(ctx, r.SystemNamespace, gatewayv1alpha1.HashSecretName(string(key.UID)))
}

// currentHashSecretName is the name of the hash Secret of key's current
// key: the one status records, else the first key's.
func currentHashSecretName(key *gatewayv1alpha1.APIKey) string {
	if ref := key.Status.HashSecretRef; ref != nil && ref.Name != "" {
		return ref.Name
	}
	return gatewayv1alpha1.HashSecretName(string(key.UID))
}
