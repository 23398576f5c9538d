package controllers

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// retire ends a key for good (revoked or expired): status first records the
// phase, then both Secrets are deleted. Once the hash is gone no gateway
// can verify the key, even after a restart.
func (r *APIKeyReconciler) retire(ctx context.Context, key *gatewayv1alpha1.APIKey, phase gatewayv1alpha1.Phase, now time.Time, ev *eventLog) error {
	key.Status.Phase = phase
	if rs := key.Status.Reveal; rs != nil && rs.State == gatewayv1alpha1.RevealPending {
		rs.State = gatewayv1alpha1.RevealExpired
	}
	// The previous key of a rotation ends with the APIKey.
	key.Status.Previous = nil
	switch phase {
	case gatewayv1alpha1.PhaseRevoked:
		if key.Status.RevokedAt == nil {
			t := metav1.NewTime(now)
			key.Status.RevokedAt = &t
		}
		r.setReady(key, metav1.ConditionFalse, "Revoked", "The key was revoked; gateway requests with it are rejected")
		ev.normal("Revoked", "Revoked key %s", key.Status.Prefix)
	case gatewayv1alpha1.PhaseExpired:
		r.setReady(key, metav1.ConditionFalse, "Expired", "The key expired; gateway requests with it are rejected")
		ev.normal("Expired", "Key %s expired", key.Status.Prefix)
	}
	// Live: a rotation may have written a hash Secret a moment ago.
	if err := r.deleteHashSecrets(ctx, key, true); err != nil {
		return err
	}
	return r.settle(ctx, key)
}

// settle makes sure a key in a final phase has no Secrets left. It reads
// the cache first so a resync of many settled keys writes nothing.
func (r *APIKeyReconciler) settle(ctx context.Context, key *gatewayv1alpha1.APIKey) error {
	if err := r.deleteHashSecrets(ctx, key, false); err != nil {
		return err
	}
	return r.deleteRevealSecrets(ctx, key, false)
}

// finalize removes the hash Secrets (which owner references cannot reach
// across namespaces: the current key's and, during a rotation's grace
// period, the previous one's) and the reveal Secret, then lets the APIKey
// go.
func (r *APIKeyReconciler) finalize(ctx context.Context, key *gatewayv1alpha1.APIKey) error {
	if !controllerutil.ContainsFinalizer(key, gatewayv1alpha1.Finalizer) {
		return nil
	}
	if err := r.deleteHashSecrets(ctx, key, true); err != nil {
		return err
	}
	// The reveal Secret would go with its owner reference too, but only
	// once a garbage collector runs; deleting it here closes that window.
	if err := r.deleteRevealSecrets(ctx, key, true); err != nil {
		return err
	}
	base := key.DeepCopy()
	controllerutil.RemoveFinalizer(key, gatewayv1alpha1.Finalizer)
	if err := r.Client.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return client.IgnoreNotFound(err)
	}
	return nil
}
