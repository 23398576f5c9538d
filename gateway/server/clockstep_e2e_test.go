package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A replica decides expiry on its own wall clock (keyindex.Entry.Usable),
// so a replica whose clock is stepped back after a key expired (an NTP
// correction, a restored VM) serves the key again, until the controller,
// on its clock, marks it Expired and deletes its hash: then every replica
// refuses it whatever its clock says. docs/reliability.md, "Clock steps",
// says what this means for the expiry promise; this test shows it.
func TestClockStepBackServesAnExpiredKeyUntilTheControllerMarksIt(t *testing.T) {
	managerClock := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: managerClock})
	gatewayClock := testenv.FakeClock(t)
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Clock: gatewayClock})
	ns := env.Namespace(t)
	k, key := env.IssueKey(t, ns, "stepped", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Minute} })
	expiry := k.Status.ExpiresAt.Time

	// The replica's clock reaches the expiry; the controller's has not.
	testenv.StepTo(gatewayClock, expiry)
	status, h, body := chat(t, gw.URL, key.Reveal())
	assert401(t, "at the expiry", status, h, body)

	// Its clock is stepped back 30 s: the expired key works again there.
	gatewayClock.SetTime(expiry.Add(-30 * time.Second))
	if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
		t.Fatalf("after the step back: status %d, want 200 (the replica's clock is before the expiry): %s", status, body)
	}

	// The controller's clock reaches the expiry: it marks the key Expired
	// and deletes its hash, and the replica refuses it though its clock
	// is still before the expiry.
	testenv.AdvanceUntil(t, managerClock, expiry, 10*time.Second, func() error {
		if phase := get(t, ns, "stepped").Status.Phase; phase != gatewayv1alpha1.PhaseExpired {
			return fmt.Errorf("phase %s, want Expired", phase)
		}
		return nil
	})
	testenv.Eventually(t, 10*time.Second, func() error {
		if !gatewayClock.Now().Before(expiry) {
			t.Fatalf("the replica's clock reached the expiry (%v) before it refused the key", expiry)
		}
		if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusUnauthorized {
			return fmt.Errorf("status %d after the controller marked the key Expired, want 401: %s", status, body)
		}
		return nil
	})
}
