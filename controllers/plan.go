package controllers

import (
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
	// stepRevoke deletes the key's Secrets and marks it Revoked.
	stepRevoke
	// stepExpire deletes the key's Secrets and marks it Expired.
	stepExpire
	// stepSettled: the key is in a final phase; only make sure no Secret
	// lingers.
	stepSettled
)

func (s step) String() string {
	return [...]string{"issue", "maintain", "revoke", "expire", "settled"}[s]
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
// (its expiry, or the end of its reveal window), or 0 when nothing will.
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
