package server_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// When a key's expiry comes, with the manager and the gateway on one
// clock: a stream in flight with the key ends, the gateway refuses the key
// and tells its owner why, and the controller marks it Expired. The test
// moves the shared fake clock to the expiry instead of waiting for it.
func TestExpiryEndsInFlightStreamAndTheKey(t *testing.T) {
	clk := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: clk})
	up := newUpstream(t, 200*time.Millisecond) // a long, slow answer
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Clock: clk})
	ns := env.Namespace(t)
	// A minute: moving the clock to the expiry then crosses no deadline of
	// the keys other tests left in the cluster (10-minute reveal windows).
	k, key := env.IssueKey(t, ns, "expiring", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Minute} })

	lines := startLongStream(t, gw, key)
	testenv.StepTo(clk, k.Status.ExpiresAt.Time)
	steppedAt := time.Now()
	sawDone := false
	for lines.Scan() {
		if strings.Contains(lines.Text(), "[DONE]") {
			sawDone = true
		}
	}
	if sawDone {
		t.Fatal("the stream ran to completion after its key expired")
	}
	if ended := time.Since(steppedAt); ended > time.Second {
		t.Errorf("stream ended %v after the expiry, want within 1s", ended)
	}
	select {
	case err := <-up.done:
		if err == nil {
			t.Error("upstream request finished without being cancelled")
		}
	case <-time.After(2 * time.Second):
		t.Error("upstream request still running 2s after the stream was ended")
	}

	status, h, body := chat(t, gw.URL, key.Reveal())
	assert401(t, "expired", status, h, body)
	if !strings.Contains(string(body), "expired") {
		t.Errorf("expired key's owner should be told it expired: %s", body)
	}
	// The controller's requeue for the expiry was armed from the clock
	// too; AdvanceUntil keeps the clock moving until it fires.
	testenv.AdvanceUntil(t, clk, k.Status.ExpiresAt.Time, 10*time.Second, func() error {
		if phase := get(t, ns, "expiring").Status.Phase; phase != gatewayv1alpha1.PhaseExpired {
			return fmt.Errorf("phase %s, want Expired", phase)
		}
		return nil
	})
}
