package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// rotate issues a new key for an Active APIKey whose spec.rotation asks
// for one (docs/design.md, section 13), in the order issue uses, so that every
// crash is harmless: the new hash Secret first (the old one stays), then
// the reveal Secret sealed to spec.rotation.revealPublicKey, then one
// status write that makes the new key current and the old one previous.
// Until that write nobody can receive the new key (its reveal Secret is
// not the one status names), so a pass that finds a hash Secret of this
// APIKey that status does not name discards it unread and starts afresh.
//
// A grace period of 0 ends the old key at once: its hash Secret is deleted
// by afterStatus, once status no longer names it.
func (r *APIKeyReconciler) rotate(ctx context.Context, key *gatewayv1alpha1.APIKey, now time.Time, ev *eventLog, afterStatus *[]func(context.Context) error) error {
	rot := key.Spec.Rotation
	// Rotating from a stale copy could make a key that is already current,
	// and maybe revealed, a leftover.
	if err := r.confirmCurrent(ctx, key); err != nil {
		return err
	}
	if err := r.discardUnrotated(ctx, key, ev); err != nil {
		return err
	}
	// A rotation during another's grace period ends the key before last:
	// status holds one previous key.
	if p := key.Status.Previous; p != nil {
		if err := r.deletePreviousHash(ctx, key); err != nil {
			return err
		}
		key.Status.Previous = nil
	}

	k, err := r.generateUniqueKey(ctx)
	if err != nil {
		return err
	}
	hashName := gatewayv1alpha1.RotatedHashSecretName(string(key.UID), k.ID())
	if err := r.createHashSecret(ctx, key, k, hashName); err != nil {
		return err
	}
	reveal, err := r.createRevealSecret(ctx, key, k, rot.RevealPublicKey, rot.RevealIn, true, ev)
	if err != nil {
		return err
	}

	oldPrefix, oldHash := key.Status.Prefix, key.Status.HashSecretRef
	if oldHash == nil {
		oldHash = &gatewayv1alpha1.SecretReference{Namespace: r.SystemNamespace, Name: gatewayv1alpha1.HashSecretName(string(key.UID))}
	}
	grace := gracePeriod(rot)
	if grace > 0 {
		key.Status.Previous = &gatewayv1alpha1.PreviousKey{
			Prefix:        oldPrefix,
			ExpiresAt:     metav1.NewTime(now.Add(grace)),
			LastUsedAt:    key.Status.LastUsedAt,
			HashSecretRef: oldHash,
		}
	} else {
		*afterStatus = append(*afterStatus, func(ctx context.Context) error {
			return r.deleteByName(ctx, oldHash.Namespace, oldHash.Name)
		})
	}
	key.Status.Prefix = k.DisplayPrefix()
	key.Status.HashSecretRef = &gatewayv1alpha1.SecretReference{Namespace: r.SystemNamespace, Name: hashName}
	key.Status.LastUsedAt = nil
	key.Status.Reveal = r.revealStatus(key, reveal, rot.RevealPublicKey)
	revealExpires := *key.Status.Reveal.ExpiresAt
	rotatedAt := rot.RequestedAt
	key.Status.RotatedAt = &rotatedAt
	r.setReady(key, metav1.ConditionTrue, "KeyActive", "The key authenticates gateway requests")
	r.Metrics.keysIssued.Inc()
	r.Metrics.keysRotated.Inc()
	if grace > 0 {
		ev.normal("Rotated", "Rotated key %s to %s; %s keeps working until %s; the new key can be revealed once until %s",
			oldPrefix, k.DisplayPrefix(), oldPrefix, key.Status.Previous.ExpiresAt.UTC().Format(time.RFC3339), revealExpires.UTC().Format(time.RFC3339))
	} else {
		ev.normal("Rotated", "Rotated key %s to %s; %s no longer works; the new key can be revealed once until %s",
			oldPrefix, k.DisplayPrefix(), oldPrefix, revealExpires.UTC().Format(time.RFC3339))
	}
	return nil
}

// discardUnrotated deletes, unread, what an interrupted rotation left: any
// hash Secret of this APIKey whose key ID is neither the current key's nor
// the previous key's (its plaintext reached nobody), and the reveal Secret
// (a new one is written; a pending reveal of a key that was never revealed
// goes too, since that key is being replaced). Someone else's Secret at
// the reveal name is neither read nor touched, and does not hold the
// rotation up: the new reveal Secret gets another name.
func (r *APIKeyReconciler) discardUnrotated(ctx context.Context, key *gatewayv1alpha1.APIKey, ev *eventLog) error {
	if err := r.deleteLeftoverHashes(ctx, key, true, ev); err != nil {
		return err
	}
	if err := r.deleteRevealSecrets(ctx, key, true); err != nil {
		return fmt.Errorf("deleting the reveal Secret of the key being rotated: %w", err)
	}
	return nil
}

// deleteLeftoverHashes deletes the hash Secrets of key whose key ID is
// neither status.prefix's nor status.previous's: left by a rotation
// interrupted before its status write, or by a grace period of 0 whose
// old hash was not deleted yet. From the cache unless live; the deletion
// itself is decided on a confirmed-current copy.
func (r *APIKeyReconciler) deleteLeftoverHashes(ctx context.Context, key *gatewayv1alpha1.APIKey, live bool, ev *eventLog) error {
	hashes, err := r.hashSecrets(ctx, key, live)
	if err != nil {
		return err
	}
	current, previous := keyIDOf(key.Status.Prefix), ""
	if p := key.Status.Previous; p != nil {
		previous = keyIDOf(p.Prefix)
	}
	confirmed := live
	for i := range hashes {
		h := &hashes[i]
		id := h.Labels[gatewayv1alpha1.LabelKeyID]
		if id != "" && (id == current || id == previous) {
			continue
		}
		if !confirmed {
			// A cached APIKey older than our last rotation would make its
			// new key look like a leftover.
			if err := r.confirmCurrent(ctx, key); err != nil {
				return err
			}
			confirmed = true
		}
		if err := r.deleteSecret(ctx, h); err != nil {
			return fmt.Errorf("discarding a hash Secret no status names: %w", err)
		}
		ev.warning("DiscardedUnissuedKey", "Discarded a key whose rotation was interrupted before anyone received it, or whose grace period had ended")
	}
	return nil
}

// endGrace ends the previous key once its grace period has passed: its
// hash Secret is deleted, then status.previous cleared. (Gateways refuse
// it from previous.expiresAt on, whether or not this has run.)
func (r *APIKeyReconciler) endGrace(ctx context.Context, key *gatewayv1alpha1.APIKey, now time.Time, ev *eventLog) error {
	p := key.Status.Previous
	if p == nil || now.Before(p.ExpiresAt.Time) {
		return r.deleteLeftoverHashes(ctx, key, false, ev)
	}
	// Clearing previous from a stale copy would clear a newer rotation's.
	if err := r.confirmCurrent(ctx, key); err != nil {
		return err
	}
	if err := r.deletePreviousHash(ctx, key); err != nil {
		return err
	}
	key.Status.Previous = nil
	ev.normal("GracePeriodEnded", "The grace period of the previous key %s ended; only %s works now", p.Prefix, key.Status.Prefix)
	return r.deleteLeftoverHashes(ctx, key, false, ev)
}

// deletePreviousHash deletes the hash Secret of status.previous.
func (r *APIKeyReconciler) deletePreviousHash(ctx context.Context, key *gatewayv1alpha1.APIKey) error {
	p := key.Status.Previous
	if p.HashSecretRef != nil && p.HashSecretRef.Name != "" {
		return r.deleteByName(ctx, r.SystemNamespace, p.HashSecretRef.Name)
	}
	hashes, err := r.hashSecrets(ctx, key, true)
	if err != nil {
		return err
	}
	for i := range hashes {
		if hashes[i].Labels[gatewayv1alpha1.LabelKeyID] == keyIDOf(p.Prefix) {
			if err := r.deleteSecret(ctx, &hashes[i]); err != nil {
				return err
			}
		}
	}
	return nil
}

// warnExpiry emits a Warning event when key crosses 7 days, 1 day or 1
// hour before its expiry, each once: status.expiryWarning records the last
// one, so a restarted manager does not repeat it. A manager that was down
// across several thresholds emits only the latest.
func warnExpiry(key *gatewayv1alpha1.APIKey, now time.Time, ev *eventLog) {
	w, ok := dueExpiryWarning(key, now)
	if !ok {
		return
	}
	key.Status.ExpiryWarning = w
	exp := key.ResolvedExpiry().Time
	ev.warning("ExpiresSoon", "Key %s expires at %s, in less than %s; its users need a new APIKey before then (a rotation keeps the expiry)",
		key.Status.Prefix, exp.UTC().Format(time.RFC3339), expiryWarningText[w])
}

var expiryWarningText = map[gatewayv1alpha1.ExpiryWarning]string{
	gatewayv1alpha1.ExpiryWarning7d: "7 days",
	gatewayv1alpha1.ExpiryWarning1d: "1 day",
	gatewayv1alpha1.ExpiryWarning1h: "1 hour",
}

// keyIDOf is the key ID in a prefix ("cvk_" + key ID), or "".
func keyIDOf(prefix string) string {
	id, ok := strings.CutPrefix(prefix, keys.Prefix)
	if !ok {
		return ""
	}
	return id
}
