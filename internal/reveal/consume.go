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
	"github.com/codevector/codevector/internal/keys"
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
)

// Consume returns the plaintext of key and deletes its reveal Secret, so
// nobody can read it again. c must read from the API server (not a cache).
//
// Two readers may both GET the Secret, but the DELETE carries the UID and
// resourceVersion they read as preconditions: the first DELETE wins, and
// every other reader gets ErrAlreadyRevealed instead of the key.
func Consume(ctx context.Context, c client.Client, key *gatewayv1alpha1.APIKey) (keys.Key, error) {
	switch {
	case key.Status.Phase == gatewayv1alpha1.PhaseActive:
	case key.Status.Phase == "" || key.Status.Phase == gatewayv1alpha1.PhasePending:
		return keys.Key{}, ErrNotReady
	default:
		return keys.Key{}, fmt.Errorf("%w (%s)", ErrNotActive, key.Status.Phase)
	}
	if r := key.Status.Reveal; r != nil {
		switch r.State {
		case gatewayv1alpha1.RevealConsumed:
			return keys.Key{}, ErrAlreadyRevealed
		case gatewayv1alpha1.RevealExpired:
			return keys.Key{}, ErrRevealExpired
		}
	}

	name := types.NamespacedName{Namespace: key.Namespace, Name: gatewayv1alpha1.RevealSecretName(key.Name)}
	s := &corev1.Secret{}
	if err := c.Get(ctx, name, s); err != nil {
		if apierrors.IsNotFound(err) {
			return keys.Key{}, ErrAlreadyRevealed
		}
		return keys.Key{}, fmt.Errorf("reading reveal Secret %s: %w", name, err)
	}
	if s.Type != gatewayv1alpha1.RevealSecretType || !metav1.IsControlledBy(s, key) {
		return keys.Key{}, fmt.Errorf("secret %s is not the reveal Secret of APIKey %s", name, key.Name)
	}
	k, err := keys.Parse(string(s.Data[gatewayv1alpha1.RevealSecretKey]))
	if err != nil {
		return keys.Key{}, fmt.Errorf("reveal Secret %s holds no valid key: %w", name, err)
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
