// Package controllers holds the APIKey reconciler: it turns each APIKey into
// an argon2id hash Secret in the system namespace and a one-shot reveal
// Secret in the key's own namespace (docs/design.md, section 6).
package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// APIKeyReconciler reconciles APIKey objects.
type APIKeyReconciler struct {
	// Client reads from the manager's cache (APIKeys, and only the Secrets
	// this controller labels) and writes to the API server.
	Client client.Client
	// APIReader reads straight from the API server. It is used where a stale
	// cache would be wrong: finding a half-issued key after a crash, and
	// confirming that a reveal or hash Secret is really gone.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// Clock is the time expiry and reveal windows are judged by, and the
	// one requeues wait on: a test that steps a fake clock past a deadline
	// wakes the key as the deadline would (see clockQueue).
	Clock clock.WithDelayedExecution

	// SystemNamespace holds the hash Secrets.
	SystemNamespace string
	// RevealWindow is how long a reveal Secret waits to be consumed.
	RevealWindow time.Duration
	// Hasher hashes new keys with bounded concurrency.
	Hasher *keys.Hasher
	// RevealMode says how a key without spec.revealPublicKey is revealed:
	// not at all until its owner supplies one (RevealSealed, the default),
	// or in plaintext (RevealPlain).
	RevealMode RevealMode
	// MaxConcurrentReconciles lets API round trips of one key overlap with
	// another key's hashing.
	MaxConcurrentReconciles int
	// Metrics counts what the controller does (NewMetrics).
	Metrics *Metrics
}

// +kubebuilder:rbac:groups=gateway.codevector.io,resources=apikeys,verbs=get;list;watch;patch;update
// +kubebuilder:rbac:groups=gateway.codevector.io,resources=apikeys/status,verbs=get;patch;update
// +kubebuilder:rbac:groups=gateway.codevector.io,resources=apikeys/finalizers,verbs=update
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch;create;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// Reconcile runs one pass of the controller (docs/design.md, section 6)
// for one APIKey.
func (r *APIKeyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	key := &gatewayv1alpha1.APIKey{}
	if err := r.Client.Get(ctx, req.NamespacedName, key); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !key.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, key)
	}
	// fresh: this pass put the finalizer on, so no pass of ours has
	// written a Secret for this key yet (issue skips looking for any).
	fresh := false
	if !controllerutil.ContainsFinalizer(key, gatewayv1alpha1.Finalizer) {
		// The finalizer goes on before any Secret exists, so no hash Secret
		// can outlive its APIKey.
		base := key.DeepCopy()
		controllerutil.AddFinalizer(key, gatewayv1alpha1.Finalizer)
		if err := r.Client.Patch(ctx, key, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return ctrl.Result{}, fmt.Errorf("adding finalizer: %w", err)
		}
		fresh = true
	}

	now := r.Clock.Now()
	before := key.Status.DeepCopy()
	key.Status.ExpiresAt = key.ResolvedExpiry()
	key.Status.ObservedGeneration = key.Generation
	key.Status.Budget = key.Spec.Budget.Summary()

	s := nextStep(key, now)
	pending := &eventLog{}
	// Deletions that may only happen once status no longer names what
	// they delete (the old key of a rotation with no grace period).
	var afterStatus []func(context.Context) error
	var err error
	switch s {
	case stepIssue:
		err = r.issue(ctx, key, fresh, pending)
	case stepMaintain:
		err = r.maintain(ctx, key, now, pending)
	case stepRotate:
		err = r.rotate(ctx, key, now, pending, &afterStatus)
	case stepRevoke:
		err = r.retire(ctx, key, gatewayv1alpha1.PhaseRevoked, now, pending)
	case stepExpire:
		err = r.retire(ctx, key, gatewayv1alpha1.PhaseExpired, now, pending)
	case stepSettled:
		err = r.settle(ctx, key)
	}
	if errors.Is(err, errStaleCache) || errors.Is(err, errLeftovers) {
		// Not a failure: the next pass sees the newer object, or, with the
		// finalizer on, discards what it found before issuing.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if err != nil {
		// A step that failed half-way still patches what it established,
		// e.g. a revocation whose Secret deletes must be retried.
		logf.FromContext(ctx).Error(err, "Failed to reconcile APIKey", "step", s.String())
	}

	if !equality.Semantic.DeepEqual(before, &key.Status) {
		if perr := r.patchStatus(ctx, key, before); perr != nil {
			return ctrl.Result{}, perr
		}
		r.Metrics.phaseTransitions.WithLabelValues(string(key.Status.Phase)).Inc()
	}
	for _, f := range afterStatus {
		if aerr := f(ctx); aerr != nil {
			err = errors.Join(err, aerr)
		}
	}
	// Events go out after the status write, so nobody reads an event about
	// a state the API does not show yet.
	pending.flush(r.Recorder, key)
	// Only once status says the reveal is over may the public keys go
	// (the CRD's rules check the stored status).
	if ferr := r.forgetRevealKeys(ctx, key); ferr != nil {
		err = errors.Join(err, ferr)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: nextDeadline(key, r.Clock.Now())}, nil
}

// forgetRevealKeys removes spec.revealPublicKey, and a done rotation's
// spec.rotation.revealPublicKey, once the reveal sealed to it is over
// (revealed, or its window ended): nothing is ever sealed to them again,
// and each is 1.6 KB of base64 that kubectl describe would print for the
// key's life. status.reveal keeps their fingerprint. The patch is
// conditional on the APIKey read, and is the manager's only write to spec:
// a conflict (the owner changed the key meanwhile) is retried by the pass
// that change causes.
func (r *APIKeyReconciler) forgetRevealKeys(ctx context.Context, key *gatewayv1alpha1.APIKey) error {
	if rs := key.Status.Reveal; rs == nil || rs.State == gatewayv1alpha1.RevealPending {
		return nil
	}
	spec := map[string]any{}
	if key.Spec.RevealPublicKey != "" {
		spec["revealPublicKey"] = nil
	}
	if rot := key.Spec.Rotation; rot != nil && rot.RevealPublicKey != "" && !rotationDue(key) {
		spec["rotation"] = map[string]any{"revealPublicKey": nil}
	}
	if len(spec) == 0 {
		return nil
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"resourceVersion": key.ResourceVersion}, "spec": spec})
	if err != nil {
		return err
	}
	if err := r.Client.Patch(ctx, key, client.RawPatch(types.MergePatchType, patch)); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		return fmt.Errorf("removing the reveal public keys of APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	return nil
}

// fingerprintOf is the fingerprint of a reveal public key, or "" for none
// (a key revealed in plaintext).
func fingerprintOf(publicKey string) string {
	if publicKey == "" {
		return ""
	}
	return gatewayv1alpha1.RevealKeyFingerprint(publicKey)
}

// patchStatus writes the status as a merge patch of what changed, so it
// never conflicts with a gateway writing lastUsedAt at the same time.
func (r *APIKeyReconciler) patchStatus(ctx context.Context, key *gatewayv1alpha1.APIKey, before *gatewayv1alpha1.APIKeyStatus) error {
	base := key.DeepCopy()
	base.Status = *before
	if err := r.Client.Status().Patch(ctx, key, client.MergeFrom(base)); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("patching status of APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	return nil
}

// issue generates the key and stores it, in an order that makes every crash
// harmless: the hash Secret first, then the reveal Secret (sealed to the
// owner), then status Active. Until status says Active no reader takes the
// reveal, so whatever an interrupted pass left (a hash, a reveal) holds a
// key nobody has: it is discarded and a fresh key generated. Nothing in the
// tenant namespace is ever read back: anyone who may create Secrets there
// could have planted it (docs/design.md, section 6).
//
// fresh says this pass added the finalizer, with a patch conditional on
// the resourceVersion of the cached copy: that copy was then the API
// server's (confirmCurrent has nothing to add; the patch's answer is newer
// still), and since the finalizer goes on before any Secret, no pass of
// ours has left anything to discard. Skipping both saves four of the nine
// API requests a new key cost. What a finalizer removed by hand, or an
// impostor, left under the names we write is found by the creates
// themselves: they fail as already existing, and the pass is retried the
// careful way (errLeftovers).
func (r *APIKeyReconciler) issue(ctx context.Context, key *gatewayv1alpha1.APIKey, fresh bool, ev *eventLog) error {
	if key.Spec.RevealPublicKey == "" && r.RevealMode != RevealPlain {
		// No key exists until its owner asks for it: it can only be sealed
		// to a public key the owner holds the private half of.
		key.Status.Phase = gatewayv1alpha1.PhasePending
		r.setReady(key, metav1.ConditionFalse, gatewayv1alpha1.ReasonAwaitingRevealKey, fmt.Sprintf(
			"No key has been generated yet: it is sealed to its owner when they ask for it. The owner runs 'kubectl apikey reveal %s -n %s' to receive it.", key.Name, key.Namespace))
		return nil
	}
	if key.Spec.RevealPublicKey == "" {
		if creator := key.Annotations[gatewayv1alpha1.AnnotationCreatedBy]; creator == "" || creator != key.Spec.Owner {
			// Plain mode writes the key where its creator can read it (they
			// may read Secrets there): an admin who created a key for
			// someone else would receive it. Such a key waits, sealed, as
			// in sealed mode. A key with no record of its creator (made
			// before the admission policy that records it) is treated so
			// too.
			if creator == "" {
				creator = "an unrecorded user"
			}
			key.Status.Phase = gatewayv1alpha1.PhasePending
			msg := fmt.Sprintf("No key has been generated yet: it was created by %s for %s, and --reveal-mode=plain reveals in plaintext only keys their owner creates. The owner runs 'kubectl apikey reveal %s -n %s' to receive it, sealed.", creator, key.Spec.Owner, key.Name, key.Namespace)
			if c := meta.FindStatusCondition(key.Status.Conditions, gatewayv1alpha1.ConditionReady); c == nil || c.Message != msg {
				ev.warning("PlainRevealRefused", "%s", msg)
			}
			r.setReady(key, metav1.ConditionFalse, gatewayv1alpha1.ReasonAwaitingRevealKey, msg)
			return nil
		}
	}
	if !fresh {
		// Issuing from a stale copy could discard a key that is already
		// Active and revealed.
		if err := r.confirmCurrent(ctx, key); err != nil {
			return err
		}
		if err := r.discardUnissued(ctx, key, ev); err != nil {
			return err
		}
	}
	k, err := r.generateUniqueKey(ctx)
	if err != nil {
		return err
	}
	if err := r.createHashSecret(ctx, key, k, gatewayv1alpha1.HashSecretName(string(key.UID))); err != nil {
		if fresh && apierrors.IsAlreadyExists(err) {
			return errLeftovers
		}
		return err
	}
	// On a fresh key a Secret at the reveal name is not yet taken as
	// somebody else's: the careful pass discards it if it is ours.
	reveal, err := r.createRevealSecret(ctx, key, k, key.Spec.RevealPublicKey, gatewayv1alpha1.RevealInKeyNamespace, !fresh, ev)
	if fresh && apierrors.IsAlreadyExists(err) {
		// The hash Secret just written is discarded with it, as after a
		// crash between the two writes.
		return errLeftovers
	}
	if err != nil {
		return err
	}

	key.Status.Phase = gatewayv1alpha1.PhaseActive
	key.Status.Prefix = k.DisplayPrefix()
	key.Status.HashSecretRef = &gatewayv1alpha1.SecretReference{Namespace: r.SystemNamespace, Name: gatewayv1alpha1.HashSecretName(string(key.UID))}
	key.Status.Reveal = r.revealStatus(key, reveal, key.Spec.RevealPublicKey)
	revealExpires := *key.Status.Reveal.ExpiresAt
	r.setReady(key, metav1.ConditionTrue, "KeyActive", "The key authenticates gateway requests")
	if rotationDue(key) {
		// A rotation asked for before the first key existed: the key just
		// issued is already newer than the request.
		requested := key.Spec.Rotation.RequestedAt
		key.Status.RotatedAt = &requested
	}
	r.Metrics.keysIssued.Inc()
	ev.normal("Issued", "Issued key %s; it can be revealed once until %s", k.DisplayPrefix(), revealExpires.UTC().Format(time.RFC3339))
	return nil
}

// confirmCurrent returns errStaleCache unless the cached key is the one
// the API server has. The cache can lag behind our own status writes; the
// few decisions that cannot be taken back (issuing a key, recording a
// reveal as consumed) check first. Each happens once per key.
func (r *APIKeyReconciler) confirmCurrent(ctx context.Context, key *gatewayv1alpha1.APIKey) error {
	live := &gatewayv1alpha1.APIKey{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(key), live); err != nil {
		if apierrors.IsNotFound(err) {
			return errStaleCache
		}
		return fmt.Errorf("reading APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	if live.UID != key.UID || live.ResourceVersion != key.ResourceVersion {
		return errStaleCache
	}
	return nil
}

// discardUnissued deletes what an interrupted pass (or an impostor) left
// for a key that is not Active yet: its hash Secret, whose plaintext nobody
// has received, and its reveal Secrets (revealSecrets), unread. A Secret
// at the reveal name that is not one of them is somebody else's: it is
// left alone, and the new reveal Secret gets another name
// (createRevealSecret).
func (r *APIKeyReconciler) discardUnissued(ctx context.Context, key *gatewayv1alpha1.APIKey, ev *eventLog) error {
	hash, err := r.getLive(ctx, r.SystemNamespace, gatewayv1alpha1.HashSecretName(string(key.UID)))
	if err != nil {
		return err
	}
	if hash != nil {
		if err := r.deleteSecret(ctx, hash); err != nil {
			return fmt.Errorf("discarding the hash Secret of an interrupted issue: %w", err)
		}
		ev.warning("DiscardedUnissuedKey", "Discarded a key whose issue was interrupted before anyone received it; generating a new one")
	}
	if err := r.deleteRevealSecrets(ctx, key, true); err != nil {
		return fmt.Errorf("discarding a reveal Secret written before the key was issued: %w", err)
	}
	return nil
}

// generateUniqueKey draws keys until one has a key ID no hash Secret uses.
// With 62^8 IDs a second draw is already rare; the bound only stops a
// broken random source from looping forever.
func (r *APIKeyReconciler) generateUniqueKey(ctx context.Context) (keys.Key, error) {
	for range 5 {
		k, err := keys.Generate()
		if err != nil {
			return keys.Key{}, fmt.Errorf("generating key: %w", err)
		}
		var same corev1.SecretList
		if err := r.Client.List(ctx, &same, client.InNamespace(r.SystemNamespace), client.MatchingFields{keyIDField: k.ID()}); err != nil {
			return keys.Key{}, fmt.Errorf("checking key ID uniqueness: %w", err)
		}
		if len(same.Items) == 0 {
			return k, nil
		}
		r.Metrics.keyIDCollisions.Inc()
	}
	return keys.Key{}, fmt.Errorf("could not draw a unique key ID in 5 attempts")
}

// maintain keeps an Active key in order: ends a rotation's grace period,
// warns of the coming expiry, ends the reveal window, notices a consumed
// reveal, and makes sure the hash Secret is still there.
func (r *APIKeyReconciler) maintain(ctx context.Context, key *gatewayv1alpha1.APIKey, now time.Time, ev *eventLog) error {
	if err := r.endGrace(ctx, key, now, ev); err != nil {
		return err
	}
	warnExpiry(key, now, ev)
	if rs := key.Status.Reveal; rs != nil && rs.State == gatewayv1alpha1.RevealPending {
		switch present, err := r.revealPresent(ctx, key); {
		case err != nil:
			return err
		case !present:
			// We may have deleted it ourselves when the window ended, in a
			// pass whose status write this cached copy does not show yet.
			if err := r.confirmCurrent(ctx, key); err != nil {
				return err
			}
			rs.State = gatewayv1alpha1.RevealConsumed
			r.Metrics.reveals.WithLabelValues("consumed").Inc()
			ev.normal("Revealed", "The key was revealed; it cannot be revealed again")
		case rs.ExpiresAt != nil && !now.Before(rs.ExpiresAt.Time):
			if err := r.deleteRevealSecrets(ctx, key, false); err != nil {
				return err
			}
			rs.State = gatewayv1alpha1.RevealExpired
			r.Metrics.reveals.WithLabelValues("expired").Inc()
			ev.normal("RevealExpired", "Nobody revealed the key within its reveal window; it can no longer be revealed")
		}
	}

	hashName := currentHashSecretName(key)
	present, err := r.exists(ctx, r.SystemNamespace, hashName)
	if err != nil || present {
		if present {
			r.setReady(key, metav1.ConditionTrue, "KeyActive", "The key authenticates gateway requests")
			return r.reportKeyIDClaimants(ctx, key, ev)
		}
		return err
	}
	// The hash Secret was deleted behind our back. Without the plaintext
	// the key cannot be served again; the owner must create a new one.
	key.Status.Phase = gatewayv1alpha1.PhaseFailed
	r.setReady(key, metav1.ConditionFalse, "HashSecretMissing",
		fmt.Sprintf("The hash Secret %s/%s was deleted; this key no longer works. Create a new key.", r.SystemNamespace, hashName))
	ev.warning("HashSecretMissing", "The hash Secret was deleted; the key no longer works")
	return nil
}

// reportKeyIDClaimants warns, on the key, about any other hash Secret that
// carries its key ID. The controller never issues a duplicate, so one can
// only have been written by hand in the system namespace; gateways keep
// the key ID for its first claimant and refuse the other (docs/design.md,
// section 11), and this event tells the owner why they see it reported.
func (r *APIKeyReconciler) reportKeyIDClaimants(ctx context.Context, key *gatewayv1alpha1.APIKey, ev *eventLog) error {
	id := strings.TrimPrefix(key.Status.Prefix, keys.Prefix)
	if id == "" {
		return nil
	}
	var same corev1.SecretList
	if err := r.Client.List(ctx, &same, client.InNamespace(r.SystemNamespace), client.MatchingFields{keyIDField: id}); err != nil {
		return fmt.Errorf("checking key ID uniqueness: %w", err)
	}
	for _, s := range same.Items {
		if s.Labels[gatewayv1alpha1.LabelAPIKeyUID] != string(key.UID) {
			r.Metrics.keyIDCollisions.Inc()
			ev.warning("KeyIDClaimedTwice", "The hash Secret %s/%s also claims key ID %s; gateways keep it for the APIKey created first and refuse the other", s.Namespace, s.Name, key.Status.Prefix)
		}
	}
	return nil
}

// revealPresent reports whether the reveal Secret this controller wrote
// for key is still there. A Secret of the same name with another UID is
// not it: ours was consumed (or deleted) and somebody put another in its
// place, which no reader will accept.
func (r *APIKeyReconciler) revealPresent(ctx context.Context, key *gatewayv1alpha1.APIKey) (bool, error) {
	ns, name := gatewayv1alpha1.RevealSecretNamespaceOf(key), gatewayv1alpha1.RevealSecretNameOf(key)
	s := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, s)
	switch {
	case apierrors.IsNotFound(err):
		// A Secret created a moment ago may not be cached yet.
		live, lerr := r.getLive(ctx, ns, name)
		if lerr != nil || live == nil {
			return false, lerr
		}
		s = live
	case err != nil:
		return false, fmt.Errorf("reading Secret %s/%s: %w", ns, name, err)
	}
	want := key.Status.Reveal.SecretUID
	return want == "" || s.UID == want, nil
}

func (r *APIKeyReconciler) setReady(key *gatewayv1alpha1.APIKey, status metav1.ConditionStatus, reason, message string) {
	// meta.SetStatusCondition keeps LastTransitionTime when the status did
	// not change, so a resync does not rewrite the condition.
	meta.SetStatusCondition(&key.Status.Conditions, metav1.Condition{
		Type:               gatewayv1alpha1.ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: key.Generation,
		LastTransitionTime: metav1.NewTime(r.Clock.Now()),
	})
}

// SetupWithManager registers the controller and the cache index it needs.
func (r *APIKeyReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Secret{}, keyIDField, func(o client.Object) []string {
		if id := o.GetLabels()[gatewayv1alpha1.LabelKeyID]; id != "" {
			return []string{id}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing hash Secrets by key ID: %w", err)
	}
	if err := mgr.GetFieldIndexer().IndexField(ctx, &corev1.Secret{}, apiKeyUIDField, func(o client.Object) []string {
		if uid := o.GetLabels()[gatewayv1alpha1.LabelAPIKeyUID]; uid != "" {
			return []string{uid}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("indexing hash Secrets by APIKey UID: %w", err)
	}
	if err := mgr.Add(r.Metrics.expiringSoon.source(r)); err != nil {
		return fmt.Errorf("registering the expiring keys gauge: %w", err)
	}
	opts := controller.Options{
		MaxConcurrentReconciles: r.MaxConcurrentReconciles,
		// Dev mode and tests run several managers in one process one
		// after another; the name check would refuse the second.
		SkipNameValidation: ptr.To(true),
	}
	if _, isReal := r.Clock.(clock.RealClock); !isReal {
		// A test's fake clock: requeues must wait on it (clockQueue).
		opts.NewQueue = func(name string, rl workqueue.TypedRateLimiter[reconcile.Request]) workqueue.TypedRateLimitingInterface[reconcile.Request] {
			return newClockQueue(name, r.Clock, rl)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		// Status-only updates (the gateways' lastUsedAt, our own status
		// patches) do not need a pass; spec changes and deletion bump the
		// generation.
		For(&gatewayv1alpha1.APIKey{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// A reveal Secret deleted by a reader marks the reveal Consumed.
		Owns(&corev1.Secret{}, builder.WithPredicates(deletesOnly{})).
		// A hash Secret deleted by hand marks the key Failed; a reveal
		// Secret in the system namespace (a console rotation's, which no
		// owner reference can tie to its APIKey) deleted by the console
		// marks the reveal Consumed.
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(hashSecretOwner), builder.WithPredicates(deletesOnly{})).
		WithOptions(opts).
		Named("apikey").
		Complete(r)
}

// hashSecretOwner maps a hash Secret, or a reveal Secret in the system
// namespace, to its APIKey through its labels.
func hashSecretOwner(_ context.Context, o client.Object) []reconcile.Request {
	l := o.GetLabels()
	ns, name := l[gatewayv1alpha1.LabelAPIKeyNamespace], l[gatewayv1alpha1.LabelAPIKeyName]
	if ns == "" || name == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}}
}
