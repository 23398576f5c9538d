package controllers_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// expiringSoon reads the manager's keys_expiring_soon gauge for ns (0
// when the namespace has no sample).
func expiringSoon(t *testing.T, ns string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "codevector_manager_keys_expiring_soon" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "namespace" && l.GetValue() == ns {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

// warnedOnce waits until k has exactly the expiry warnings named, in
// order, as Warning events and in status.expiryWarning.
func warnedOnce(t *testing.T, k *gatewayv1alpha1.APIKey, want ...string) func() error {
	return func() error {
		got := get(t, k.Namespace, k.Name)
		evs := eventsOf(t, got, "ExpiresSoon")
		if len(evs) != len(want) {
			return fmt.Errorf("%d ExpiresSoon events, want %d", len(evs), len(want))
		}
		for _, w := range want {
			found := 0
			for _, e := range evs {
				if e.Type == "Warning" && strings.Contains(e.Note, "less than "+w) {
					found++
				}
			}
			if found != 1 {
				return fmt.Errorf("%d warnings for %q, want 1", found, w)
			}
		}
		status := map[string]gatewayv1alpha1.ExpiryWarning{"7 days": "7d", "1 day": "1d", "1 hour": "1h"}
		if last := want[len(want)-1]; got.Status.ExpiryWarning != status[last] {
			return fmt.Errorf("status.expiryWarning = %q after the %s warning", got.Status.ExpiryWarning, last)
		}
		return nil
	}
}

// The controller warns 7 days, 1 day and 1 hour before a key expires,
// each once, a restart of the manager included; the keys_expiring_soon
// gauge counts the key from 7 days before its expiry.
func TestExpiryWarningsOnceEachAndTheGauge(t *testing.T) {
	clk := testenv.FakeClock(t)
	stop := env.StartManager(t, manager.Options{Clock: clk})
	ns := env.Namespace(t)
	expires := metav1.NewTime(clk.Now().Add(7*24*time.Hour + 2*time.Minute).Truncate(time.Second))
	create(t, newKey(ns, "expiring", func(k *gatewayv1alpha1.APIKey) { k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(expires.Time) }))
	k := env.WaitForPhase(t, ns, "expiring", gatewayv1alpha1.PhaseActive, 10*time.Second)
	if n := len(eventsOf(t, k, "ExpiresSoon")); n != 0 || k.Status.ExpiryWarning != "" {
		t.Fatalf("warned %d times (%q) with more than 7 days left", n, k.Status.ExpiryWarning)
	}
	if v := expiringSoon(t, ns); v != 0 {
		t.Errorf("keys_expiring_soon{namespace=%s} = %v with more than 7 days left, want 0", ns, v)
	}

	step := func(before time.Duration, want ...string) {
		t.Helper()
		at := expires.Add(-before)
		// Most of the way in one step (no deadline of this key lies in
		// between), the rest in AdvanceUntil's small steps so the
		// warning's requeue is not overshot by much.
		testenv.StepTo(clk, at.Add(-time.Minute))
		testenv.AdvanceUntil(t, clk, at, 10*time.Second, warnedOnce(t, k, want...))
	}
	step(7*24*time.Hour, "7 days")
	testenv.Eventually(t, 5*time.Second, func() error {
		if v := expiringSoon(t, ns); v != 1 {
			return fmt.Errorf("keys_expiring_soon{namespace=%s} = %v, want 1", ns, v)
		}
		return nil
	})

	// A restarted manager does not warn again: make it reconcile the key
	// (a spec change) and look.
	stop()
	env.StartManager(t, manager.Options{Clock: clk})
	k = get(t, ns, "expiring")
	if err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.DisplayName = "nudged" }); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := get(t, ns, "expiring"); got.Status.ObservedGeneration != got.Generation {
			return fmt.Errorf("observedGeneration %d, generation %d", got.Status.ObservedGeneration, got.Generation)
		}
		return nil
	})
	if err := warnedOnce(t, k, "7 days")(); err != nil {
		t.Errorf("after a restart: %v", err)
	}

	step(24*time.Hour, "7 days", "1 day")
	step(time.Hour, "7 days", "1 day", "1 hour")
	if v := expiringSoon(t, ns); v != 1 {
		t.Errorf("keys_expiring_soon{namespace=%s} = %v an hour before expiry, want 1", ns, v)
	}
	testenv.AdvanceUntil(t, clk, expires.Time, 10*time.Second, func() error {
		if got := get(t, ns, "expiring"); got.Status.Phase != gatewayv1alpha1.PhaseExpired {
			return fmt.Errorf("phase %s", got.Status.Phase)
		}
		return nil
	})
	if v := expiringSoon(t, ns); v != 0 {
		t.Errorf("keys_expiring_soon{namespace=%s} = %v once the key expired, want 0", ns, v)
	}
	if err := warnedOnce(t, k, "7 days", "1 day", "1 hour")(); err != nil {
		t.Errorf("after expiry: %v", err)
	}
}
