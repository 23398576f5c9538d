package controllers

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func TestNextStep(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := created.Add(time.Hour)
	past := metav1.NewTime(now.Add(-time.Second))
	future := metav1.NewTime(now.Add(time.Hour))

	cases := []struct {
		name  string
		spec  gatewayv1alpha1.APIKeySpec
		phase gatewayv1alpha1.Phase
		want  step
	}{
		{"new key", gatewayv1alpha1.APIKeySpec{}, "", stepIssue},
		{"pending key", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.PhasePending, stepIssue},
		{"active key", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.PhaseActive, stepMaintain},
		{"active key expiring later", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(future.Time)}, gatewayv1alpha1.PhaseActive, stepMaintain},
		{"active key past expiresAt", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, gatewayv1alpha1.PhaseActive, stepExpire},
		{"active key past ttl", gatewayv1alpha1.APIKeySpec{TTL: &gatewayv1alpha1.Lifetime{Duration: time.Minute}}, gatewayv1alpha1.PhaseActive, stepExpire},
		{"ttl not reached", gatewayv1alpha1.APIKeySpec{TTL: &gatewayv1alpha1.Lifetime{Duration: 2 * time.Hour}}, gatewayv1alpha1.PhaseActive, stepMaintain},
		{"new key already expired is never issued", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, "", stepExpire},
		{"revoked active key", gatewayv1alpha1.APIKeySpec{Revoked: true}, gatewayv1alpha1.PhaseActive, stepRevoke},
		{"revoked before issue", gatewayv1alpha1.APIKeySpec{Revoked: true}, "", stepRevoke},
		{"revocation wins over expiry", gatewayv1alpha1.APIKeySpec{Revoked: true, ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, gatewayv1alpha1.PhaseActive, stepRevoke},
		{"revoking an expired key records the revocation", gatewayv1alpha1.APIKeySpec{Revoked: true}, gatewayv1alpha1.PhaseExpired, stepRevoke},
		{"revoked is final", gatewayv1alpha1.APIKeySpec{Revoked: true}, gatewayv1alpha1.PhaseRevoked, stepSettled},
		{"expired is final", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, gatewayv1alpha1.PhaseExpired, stepSettled},
		{"failed is final", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.PhaseFailed, stepSettled},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := &gatewayv1alpha1.APIKey{
				ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)},
				Spec:       tc.spec,
				Status:     gatewayv1alpha1.APIKeyStatus{Phase: tc.phase},
			}
			if got := nextStep(key, now); got != tc.want {
				t.Errorf("nextStep = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextDeadline(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }

	cases := []struct {
		name string
		key  gatewayv1alpha1.APIKey
		want time.Duration
	}{
		{"not active", gatewayv1alpha1.APIKey{Spec: gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(time.Hour).Time)}}, 0},
		{"active, no deadlines", gatewayv1alpha1.APIKey{Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}}, 0},
		{"expiry", gatewayv1alpha1.APIKey{
			Spec:   gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(time.Hour).Time)},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, ExpiryWarning: gatewayv1alpha1.ExpiryWarning1h},
		}, time.Hour},
		{"expiry warning due", gatewayv1alpha1.APIKey{
			Spec:   gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(time.Hour).Time)},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, ExpiryWarning: gatewayv1alpha1.ExpiryWarning7d},
		}, time.Millisecond},
		{"next expiry warning", gatewayv1alpha1.APIKey{
			Spec:   gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(8 * 24 * time.Hour).Time)},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive},
		}, 24 * time.Hour},
		{"end of a grace period", gatewayv1alpha1.APIKey{
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive,
				Previous: &gatewayv1alpha1.PreviousKey{Prefix: "cvk_ABCDEFGH", ExpiresAt: *at(5 * time.Minute)}},
		}, 5 * time.Minute},
		{"pending reveal before expiry", gatewayv1alpha1.APIKey{
			Spec: gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(time.Hour).Time)},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, ExpiryWarning: gatewayv1alpha1.ExpiryWarning1h,
				Reveal: &gatewayv1alpha1.RevealStatus{State: gatewayv1alpha1.RevealPending, ExpiresAt: at(10 * time.Minute)}},
		}, 10 * time.Minute},
		{"consumed reveal is no deadline", gatewayv1alpha1.APIKey{
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive,
				Reveal: &gatewayv1alpha1.RevealStatus{State: gatewayv1alpha1.RevealConsumed, ExpiresAt: at(10 * time.Minute)}},
		}, 0},
		{"deadline passed", gatewayv1alpha1.APIKey{
			Spec:   gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(-time.Minute).Time)},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive},
		}, time.Millisecond},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextDeadline(&tc.key, now); got != tc.want {
				t.Errorf("nextDeadline = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestNextStepRotation(t *testing.T) {
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	asked := &gatewayv1alpha1.Rotation{RequestedAt: metav1.NewTime(now), RevealPublicKey: "cHVi"}
	earlier := metav1.NewTime(now.Add(-time.Hour))
	same := metav1.NewTime(now)
	cases := []struct {
		name      string
		spec      gatewayv1alpha1.APIKeySpec
		phase     gatewayv1alpha1.Phase
		rotatedAt *metav1.Time
		want      step
	}{
		{"first rotation", gatewayv1alpha1.APIKeySpec{Rotation: asked}, gatewayv1alpha1.PhaseActive, nil, stepRotate},
		{"a later rotation", gatewayv1alpha1.APIKeySpec{Rotation: asked}, gatewayv1alpha1.PhaseActive, &earlier, stepRotate},
		{"rotation carried out", gatewayv1alpha1.APIKeySpec{Rotation: asked}, gatewayv1alpha1.PhaseActive, &same, stepMaintain},
		{"pending key is issued, not rotated", gatewayv1alpha1.APIKeySpec{Rotation: asked}, gatewayv1alpha1.PhasePending, nil, stepIssue},
		{"revocation wins over rotation", gatewayv1alpha1.APIKeySpec{Rotation: asked, Revoked: true}, gatewayv1alpha1.PhaseActive, nil, stepRevoke},
		{"expiry wins over rotation", gatewayv1alpha1.APIKeySpec{Rotation: asked, ExpiresAt: gatewayv1alpha1.NewExpiry(earlier.Time)}, gatewayv1alpha1.PhaseActive, nil, stepExpire},
	}
	for _, tc := range cases {
		k := &gatewayv1alpha1.APIKey{Spec: tc.spec, Status: gatewayv1alpha1.APIKeyStatus{Phase: tc.phase, RotatedAt: tc.rotatedAt}}
		if got := nextStep(k, now); got != tc.want {
			t.Errorf("%s: nextStep = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestDueExpiryWarning(t *testing.T) {
	expires := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	at := metav1.NewTime(expires)
	cases := []struct {
		name     string
		before   time.Duration // now = expires - before
		warned   gatewayv1alpha1.ExpiryWarning
		want     gatewayv1alpha1.ExpiryWarning
		wantNext time.Duration // the next warning's time, before expiry; 0 for none
	}{
		{"more than 7 days left", 8 * 24 * time.Hour, "", "", 7 * 24 * time.Hour},
		{"7 days left", 7 * 24 * time.Hour, "", gatewayv1alpha1.ExpiryWarning7d, 7 * 24 * time.Hour},
		{"7d already warned", 3 * 24 * time.Hour, gatewayv1alpha1.ExpiryWarning7d, "", 24 * time.Hour},
		{"1 day left", 23 * time.Hour, gatewayv1alpha1.ExpiryWarning7d, gatewayv1alpha1.ExpiryWarning1d, 24 * time.Hour},
		{"missed thresholds: only the latest", 30 * time.Minute, "", gatewayv1alpha1.ExpiryWarning1h, 7 * 24 * time.Hour},
		{"1h already warned", 30 * time.Minute, gatewayv1alpha1.ExpiryWarning1h, "", 0},
		{"expired: nothing", -time.Minute, gatewayv1alpha1.ExpiryWarning1d, "", time.Hour},
	}
	for _, tc := range cases {
		k := &gatewayv1alpha1.APIKey{Spec: gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at.Time)}, Status: gatewayv1alpha1.APIKeyStatus{ExpiryWarning: tc.warned}}
		got, _ := dueExpiryWarning(k, expires.Add(-tc.before))
		if got != tc.want {
			t.Errorf("%s: due = %q, want %q", tc.name, got, tc.want)
		}
		next, _, ok := nextExpiryWarning(k)
		if ok != (tc.wantNext != 0) || (ok && !next.Equal(expires.Add(-tc.wantNext))) {
			t.Errorf("%s: next warning at %v (%v), want %v before expiry", tc.name, next, ok, tc.wantNext)
		}
	}
	if w, ok := dueExpiryWarning(&gatewayv1alpha1.APIKey{}, expires); ok {
		t.Errorf("a key that never expires is warned: %q", w)
	}
}
