package server_test

import (
	"net/http"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A replica decides expiry on its own wall clock (keyindex.Entry.Usable).
// A step back of that clock (an NTP correction, a restored VM) must not
// serve a key again that the replica has already refused as expired: the
// authenticator's clock holds the latest time it has seen
// (docs/reliability.md, "Clock steps"). Before that, the key worked again
// there until the controller, on its own clock, marked it Expired.
func TestClockStepBackDoesNotReviveAnExpiredKey(t *testing.T) {
	managerClock := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: managerClock})
	gatewayClock := testenv.FakeClock(t)
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Clock: gatewayClock})
	ns := env.Namespace(t)
	k, key := env.IssueKey(t, ns, "stepped", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Minute} })
	expiry := k.Status.ExpiresAt.Time

	// The replica's clock reaches the expiry; the controller's has not, so
	// the key's hash is still in the index.
	testenv.StepTo(gatewayClock, expiry)
	status, h, body := chat(t, gw.URL, key.Reveal())
	assert401(t, "at the expiry", status, h, body)

	// Its clock is stepped back 30 s: the key stays expired there.
	gatewayClock.SetTime(expiry.Add(-30 * time.Second))
	status, h, body = chat(t, gw.URL, key.Reveal())
	assert401(t, "after the clock stepped back", status, h, body)
	if phase := get(t, ns, "stepped").Status.Phase; phase == gatewayv1alpha1.PhaseExpired {
		t.Fatalf("the controller marked the key Expired on its own clock: the refusal above proves nothing")
	}

	// A key that had not expired when the clock stepped back still works.
	_, fresh := env.IssueKey(t, ns, "fresh")
	if status, _, body := chat(t, gw.URL, fresh.Reveal()); status != http.StatusOK {
		t.Fatalf("a key without an expiry after the step back: status %d, want 200: %s", status, body)
	}
}
