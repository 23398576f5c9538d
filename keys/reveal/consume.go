// Package reveal reads a key's one-shot reveal Secret. The console and the
// CLI both use it, so there is exactly one way to consume a reveal.
package reveal

import (
	"context"
	"errors"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/seal"
)

var (
	// ErrAlreadyRevealed: somebody else consumed the reveal first.
	ErrAlreadyRevealed = errors.New("the key has already been revealed and cannot be shown again; create a new key if you lost it")
	// ErrRevealExpired: nobody consumed the reveal within its window.
	ErrRevealExpired = errors.New("the reveal window has passed and the key can no longer be shown; create a new key and revoke this one")
	// ErrNotReady: the controller has not issued the key yet.
	ErrNotReady = errors.New("the key has not been issued yet")
	// ErrNotActive: the key was revoked, expired or failed.
	ErrNotActive = errors.New("the key is no longer active")
	// ErrSealedToAnother: the key was sealed to a public key this reader
	// does not hold the private half of (another reveal request set it).
	ErrSealedToAnother = errors.New("the key was sealed to another reveal request (an interrupted create, or someone else's reveal) and only that request could read it; revoke this key and create a new one")
	// ErrReplaced: the reveal Secret is not the one the controller wrote.
	ErrReplaced = errors.New("the reveal Secret was replaced by someone else and cannot be trusted; revoke this key and create a new one")
)

// Consume returns the key of an issued APIKey and deletes its reveal
// Secret, so nobody can read it again. c must read from the API server (not
// a cache). private is the reveal request's private key, whose public half
// is the APIKey's spec.revealPublicKey; nil only for a key issued without
// one (a manager in --reveal-mode=plain).
//
// Two readers may both GET the Secret, but the DELETE carries the UID and
// resourceVersion they read as preconditions: the first DELETE wins, and
// every other reader gets ErrAlreadyRevealed instead of the key. Only the
// Secret the controller wrote counts (its UID is in status.reveal), and
// the key must be the one status names (its prefix): a Secret planted under
// the same name by someone who may create Secrets in the namespace hands
// its reader nothing.
func Consume(ctx context.Context, c client.Client, key *gatewayv1alpha1.APIKey, private *seal.PrivateKey) (keys.Key, error) {
	switch {
	case key.Status.Phase == gatewayv1alpha1.PhaseActive:
	case key.Status.Phase == "" || key.Status.Phase == gatewayv1alpha1.PhasePending:
		return keys.Key{}, ErrNotReady
	default:
		return keys.Key{}, fmt.Errorf("%w (%s)", ErrNotActive, key.Status.Phase)
	}
	var wantUID types.UID
	if r := key.Status.Reveal; r != nil {
		switch r.State {
		case gatewayv1alpha1.RevealConsumed:
			return keys.Key{}, ErrAlreadyRevealed
		case gatewayv1alpha1.RevealExpired:
			return keys.Key{}, ErrRevealExpired
		}
		wantUID = r.SecretUID
	}
	if sealed(key, nil) && private == nil {
		return keys.Key{}, ErrSealedToAnother
	}

	// status.reveal names it: another name than RevealSecretName when
	// someone else's Secret held that one when the key was issued, and
	// the system namespace for a rotation the console asked for.
	name := types.NamespacedName{Namespace: gatewayv1alpha1.RevealSecretNamespaceOf(key), Name: gatewayv1alpha1.RevealSecretNameOf(key)}
	s := &corev1.Secret{}
	if err := c.Get(ctx, name, s); err != nil {
		if apierrors.IsNotFound(err) {
			return keys.Key{}, ErrAlreadyRevealed
		}
		return keys.Key{}, fmt.Errorf("reading reveal Secret %s: %w", name, err)
	}
	if s.Type != gatewayv1alpha1.RevealSecretType || !revealOf(s, key) {
		return keys.Key{}, fmt.Errorf("secret %s is not the reveal Secret of APIKey %s", name, key.Name)
	}
	if wantUID != "" && s.UID != wantUID {
		return keys.Key{}, fmt.Errorf("%w (Secret %s was replaced after the controller wrote it)", ErrReplaced, name)
	}
	k, err := open(key, s, private)
	if err != nil {
		return keys.Key{}, fmt.Errorf("reveal Secret %s: %w", name, err)
	}
	if k.DisplayPrefix() != key.Status.Prefix {
		return keys.Key{}, fmt.Errorf("%w (Secret %s holds a key with another prefix)", ErrReplaced, name)
	}
	uid, rv := s.UID, s.ResourceVersion
	err = c.Delete(ctx, s, client.Preconditions{UID: &uid, ResourceVersion: &rv})
	switch {
	case err == nil:
		return k, nil
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		return keys.Key{}, ErrAlreadyRevealed
	default:
		return keys.Key{}, fmt.Errorf("deleting reveal Secret %s: %w", name, err)
	}
}

// revealOf tells whether s was written for key: next to it, owned by it;
// in another namespace (the system namespace, where no owner reference
// can reach), labelled with its UID.
func revealOf(s *corev1.Secret, key *gatewayv1alpha1.APIKey) bool {
	if s.Namespace == key.Namespace {
		return metav1.IsControlledBy(s, key)
	}
	return s.Labels[gatewayv1alpha1.LabelAPIKeyUID] == string(key.UID)
}

// sealed reports whether the reveal of key is sealed: it carries a public
// key (spec.revealPublicKey, or a rotation's), or status.reveal names the
// one it was sealed to (the manager removes the public keys once a reveal
// is over, and the first key's goes while a rotation's reveal is pending),
// or the caller holds a private key, and so asked for a sealed one.
func sealed(key *gatewayv1alpha1.APIKey, private *seal.PrivateKey) bool {
	return private != nil || key.Spec.RevealPublicKey != "" ||
		key.Spec.Rotation != nil && key.Spec.Rotation.RevealPublicKey != "" ||
		key.Status.Reveal != nil && key.Status.Reveal.PublicKeyFingerprint != ""
}

// open reads the key out of a reveal Secret: sealed for a key that carries
// a public key (never plaintext then, whatever the Secret holds), plaintext
// only for one issued without.
func open(key *gatewayv1alpha1.APIKey, s *corev1.Secret, private *seal.PrivateKey) (keys.Key, error) {
	if sealed(key, private) {
		sealed, ok := s.Data[gatewayv1alpha1.RevealSecretSealedKey]
		if !ok {
			return keys.Key{}, fmt.Errorf("%w: it holds no sealed key", ErrReplaced)
		}
		k, err := private.Open(key.UID, sealed)
		if errors.Is(err, seal.ErrCannotOpen) {
			return keys.Key{}, ErrSealedToAnother
		}
		return k, err
	}
	k, err := keys.Parse(string(s.Data[gatewayv1alpha1.RevealSecretPlainKey]))
	if err != nil {
		return keys.Key{}, fmt.Errorf("it holds no valid key: %w", err)
	}
	return k, nil
}
