package controllers

import (
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// step is the one thing a reconcile pass does for an APIKey. Choosing it is
// pure (no API calls) so the rules can be read, and tested, in one place.
type step int

const (
	// stepIssue generates the key (or completes a half-finished issue after
	// a crash) and makes the APIKey Active.
	stepIssue step = iota
	// stepMaintain keeps an Active key's reveal window and hash Secret in order.
	stepMaintain
	// stepRotate issues a new key for an Active key whose owner asked for
	// one (spec.rotation), keeping the old one for its grace period.
	stepRotate
	// stepRevoke deletes the key's Secrets and marks it Revoked.
	stepRevoke
	// stepExpire deletes the key's Secrets and marks it Expired.
	stepExpire
	// stepSettled: the key is in a final phase; only make sure no Secret
	// lingers.
	stepSettled
)

func (s step) String() string {
	return [...]string{"issue", "maintain", "rotate", "revoke", "expire", "settled"}[s]
}

// nextStep decides what a reconcile pass does for key at time now.
// Revocation wins over everything (it is what an operator reaches for in an
// incident), then expiry, then the normal life of the key.
func nextStep(key *gatewayv1alpha1.APIKey, now time.Time) step {
	switch {
	case key.Status.Phase == gatewayv1alpha1.PhaseRevoked:
		return stepSettled
	case key.Spec.Revoked:
		return stepRevoke
	case key.Status.Phase == gatewayv1alpha1.PhaseExpired:
		return stepSettled
	case expired(key, now):
		return stepExpire
	case key.Status.Phase == gatewayv1alpha1.PhaseFailed:
		return stepSettled
	case key.Status.Phase == gatewayv1alpha1.PhaseActive && rotationDue(key):
		return stepRotate
	case key.Status.Phase == gatewayv1alpha1.PhaseActive:
		return stepMaintain
	default:
		return stepIssue
	}
}

func expired(key *gatewayv1alpha1.APIKey, now time.Time) bool {
	at := key.ResolvedExpiry()
	return at != nil && !now.Before(at.Time)
}

// nextDeadline is how long until something about key changes on its own
// (its expiry, an expiry warning, the end of its reveal window or of a
// rotation's grace period), or 0 when nothing will.
func nextDeadline(key *gatewayv1alpha1.APIKey, now time.Time) time.Duration {
	if key.Status.Phase != gatewayv1alpha1.PhaseActive {
		return 0
	}
	var next time.Time
	consider := func(t *metav1.Time) {
		if t != nil && (next.IsZero() || t.Before(&metav1.Time{Time: next})) {
			next = t.Time
		}
	}
	consider(key.ResolvedExpiry())
	if p := key.Status.Previous; p != nil {
		consider(&p.ExpiresAt)
	}
	if at, _, ok := nextExpiryWarning(key); ok {
		consider(&metav1.Time{Time: at})
	}
	if r := key.Status.Reveal; r != nil && r.State == gatewayv1alpha1.RevealPending {
		consider(r.ExpiresAt)
	}
	if next.IsZero() {
		return 0
	}
	// The workqueue needs a positive delay; a deadline already passed is
	// handled on the very next pass.
	return max(next.Sub(now), time.Millisecond)
}

// rotationDue reports whether spec.rotation asks for a rotation the
// controller has not carried out yet.
func rotationDue(key *gatewayv1alpha1.APIKey) bool {
	rot := key.Spec.Rotation
	// A rotation without a public key is one the manager has carried out
	// and forgotten the key of (forgetRevealKeys); the CRD admits no new
	// one without. Never due: an empty key would reveal in plaintext.
	if rot == nil || rot.RevealPublicKey == "" {
		return false
	}
	done := key.Status.RotatedAt
	return done == nil || rot.RequestedAt.After(done.Time)
}

// gracePeriod is how long the key a rotation replaces keeps working.
func gracePeriod(rot *gatewayv1alpha1.Rotation) time.Duration {
	if rot.GracePeriod != nil {
		return max(rot.GracePeriod.Duration, 0)
	}
	d, _ := time.ParseDuration(gatewayv1alpha1.DefaultRotationGracePeriod)
	return d
}

// expiryThreshold is one warning before a key expires.
type expiryThreshold struct {
	name   gatewayv1alpha1.ExpiryWarning
	before time.Duration
}

// expiryWarnings are the warnings a key gets before it expires, earliest
// first.
var expiryWarnings = []expiryThreshold{
	{gatewayv1alpha1.ExpiryWarning7d, 7 * 24 * time.Hour},
	{gatewayv1alpha1.ExpiryWarning1d, 24 * time.Hour},
	{gatewayv1alpha1.ExpiryWarning1h, time.Hour},
}

// nextExpiryWarning is the next expiry warning key is due: when, and
// which. False for a key that never expires or that has had its last one.
// A warning already due (the key was created with less than 7 days to
// live, or the manager was down) is returned with its time in the past;
// when several are due, only the latest counts.
func nextExpiryWarning(key *gatewayv1alpha1.APIKey) (time.Time, gatewayv1alpha1.ExpiryWarning, bool) {
	exp := key.ResolvedExpiry()
	if exp == nil {
		return time.Time{}, "", false
	}
	last := slices.IndexFunc(expiryWarnings, func(w expiryThreshold) bool { return w.name == key.Status.ExpiryWarning })
	if last+1 >= len(expiryWarnings) {
		return time.Time{}, "", false
	}
	w := expiryWarnings[last+1]
	return exp.Add(-w.before), w.name, true
}

// dueExpiryWarning is the warning key should get at now, if any: the
// latest threshold it has crossed and not been warned about.
func dueExpiryWarning(key *gatewayv1alpha1.APIKey, now time.Time) (gatewayv1alpha1.ExpiryWarning, bool) {
	exp := key.ResolvedExpiry()
	if exp == nil || !now.Before(exp.Time) {
		return "", false
	}
	var due gatewayv1alpha1.ExpiryWarning
	passedLast := key.Status.ExpiryWarning == ""
	for _, w := range expiryWarnings {
		if passedLast && !now.Before(exp.Add(-w.before)) {
			due = w.name
		}
		if w.name == key.Status.ExpiryWarning {
			passedLast = true
		}
	}
	return due, due != ""
}
