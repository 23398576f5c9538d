package request

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func TestNewRotation(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 700_000_000, time.UTC)
	key := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ci", UID: "u-1", ResourceVersion: "42"}}
	for _, tc := range []struct {
		name string
		prev *time.Time
		want time.Time
	}{
		{"first rotation: now in whole seconds", nil, now.Truncate(time.Second)},
		{"an earlier one: still now", ptr(now.Add(-time.Hour)), now.Truncate(time.Second)},
		{"one in the same second: a second later", ptr(now.Truncate(time.Second)), now.Truncate(time.Second).Add(time.Second)},
		{"one ahead (clock skew): a second after it", ptr(now.Add(time.Minute).Truncate(time.Second)), now.Add(time.Minute).Truncate(time.Second).Add(time.Second)},
	} {
		k := key.DeepCopy()
		if tc.prev != nil {
			k.Spec.Rotation = &gatewayv1alpha1.Rotation{RequestedAt: metav1.NewTime(*tc.prev)}
		}
		r, err := NewRotation(k, now, time.Hour, "pub", "")
		if err != nil {
			t.Fatal(err)
		}
		if !r.At.Time.Equal(tc.want) {
			t.Errorf("%s: requestedAt %v, want %v", tc.name, r.At.Time, tc.want)
		}
		body, _ := r.Patch.Data(k)
		for _, want := range []string{`"uid":"u-1"`, `"resourceVersion":"42"`, `"gracePeriod":"1h0m0s"`, `"revealPublicKey":"pub"`, `"revealIn":null`} {
			if !strings.Contains(string(body), want) {
				t.Errorf("%s: patch %s lacks %s", tc.name, body, want)
			}
		}
	}
}

// The console's rotation asks for its reveal in the system namespace; the
// CLI's clears what a console rotation before it asked for (a merge patch
// would keep it, and the API server lets only the console ask).
func TestNewRotationRevealIn(t *testing.T) {
	key := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "ci", UID: "u-1"}}
	for in, want := range map[gatewayv1alpha1.RevealLocation]string{
		"": `"revealIn":null`, gatewayv1alpha1.RevealInKeyNamespace: `"revealIn":null`,
		gatewayv1alpha1.RevealInSystemNamespace: `"revealIn":"SystemNamespace"`,
	} {
		r, err := NewRotation(key, time.Now(), time.Hour, "pub", in)
		if err != nil {
			t.Fatal(err)
		}
		if body, _ := r.Patch.Data(key); !strings.Contains(string(body), want) {
			t.Errorf("revealIn %q: patch %s lacks %s", in, body, want)
		}
	}
}

func TestRotationDone(t *testing.T) {
	r := Rotation{At: metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))}
	other := metav1.NewTime(r.At.Add(-time.Second))
	for _, tc := range []struct {
		phase gatewayv1alpha1.Phase
		at    *metav1.Time
		want  bool
	}{
		{gatewayv1alpha1.PhaseActive, &r.At, true},
		{gatewayv1alpha1.PhaseActive, &other, false},
		{gatewayv1alpha1.PhaseActive, nil, false},
		{gatewayv1alpha1.PhaseRevoked, &r.At, false},
	} {
		k := &gatewayv1alpha1.APIKey{Status: gatewayv1alpha1.APIKeyStatus{Phase: tc.phase, RotatedAt: tc.at}}
		if got := r.Done(k); got != tc.want {
			t.Errorf("phase %s, rotatedAt %v: Done = %v, want %v", tc.phase, tc.at, got, tc.want)
		}
	}
}

func ptr[T any](v T) *T { return &v }
