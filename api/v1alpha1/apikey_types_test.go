package v1alpha1

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestEffectiveStatus(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	for _, tc := range []struct {
		name string
		key  APIKey
		want Phase
	}{
		{"new", APIKey{}, PhasePending},
		{"pending", APIKey{Status: APIKeyStatus{Phase: PhasePending}}, PhasePending},
		{"active", APIKey{Status: APIKeyStatus{Phase: PhaseActive}}, PhaseActive},
		{"failed", APIKey{Status: APIKeyStatus{Phase: PhaseFailed}}, PhaseFailed},
		{"revoked before the controller noticed", APIKey{Spec: APIKeySpec{Revoked: true}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseRevoked},
		{"revoked", APIKey{Spec: APIKeySpec{Revoked: true}, Status: APIKeyStatus{Phase: PhaseRevoked}}, PhaseRevoked},
		{"revoked phase", APIKey{Status: APIKeyStatus{Phase: PhaseRevoked}}, PhaseRevoked},
		{"being deleted", APIKey{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: at(-time.Minute)}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseRevoked},
		{"expired", APIKey{Status: APIKeyStatus{Phase: PhaseExpired}}, PhaseExpired},
		{"past expiresAt before the controller noticed", APIKey{Spec: APIKeySpec{ExpiresAt: NewExpiry(at(-time.Second).Time)}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseExpired},
		{"at expiresAt exactly", APIKey{Spec: APIKeySpec{ExpiresAt: NewExpiry(at(0).Time)}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseExpired},
		{"expiring later", APIKey{Spec: APIKeySpec{ExpiresAt: NewExpiry(at(time.Hour).Time)}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseActive},
		{"past its ttl", APIKey{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *at(-2 * time.Hour)}, Spec: APIKeySpec{TTL: &Lifetime{Duration: time.Hour}}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseExpired},
		{"within its ttl", APIKey{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: *at(-time.Minute)}, Spec: APIKeySpec{TTL: &Lifetime{Duration: time.Hour}}, Status: APIKeyStatus{Phase: PhaseActive}}, PhaseActive},
		{"pending past expiry", APIKey{Spec: APIKeySpec{ExpiresAt: NewExpiry(at(-time.Second).Time)}}, PhaseExpired},
		{"revoked and expired", APIKey{Spec: APIKeySpec{Revoked: true, ExpiresAt: NewExpiry(at(-time.Hour).Time)}, Status: APIKeyStatus{Phase: PhaseExpired}}, PhaseRevoked},
	} {
		if got := tc.key.EffectiveStatus(now); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
