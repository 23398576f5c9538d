package auth

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys"
)

var fastParams = keys.Params{Memory: keys.MinMemoryKiB, Time: 1, Threads: 1}

// fixture is an index holding one Active key, that key, and an
// Authenticator over the index that tells time by c.
func fixture(t testing.TB, c clock.WithDelayedExecution) (*Authenticator, *keyindex.Index, keys.Key, keyindex.APIKeyFacts) {
	t.Helper()
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	ix := keyindex.New(nil)
	facts := keyindex.APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", KeyID: k.ID(),
		Prefix: k.DisplayPrefix(), Owner: "alice", Phase: gatewayv1alpha1.PhaseActive}
	ix.SetAPIKey(facts)
	setHash(t, ix, k, "uid-1", "hash-1")
	a := New(ix, Options{Clock: c})
	return a, ix, k, facts
}

func setHash(t testing.TB, ix *keyindex.Index, k keys.Key, apiKeyUID, secretUID string) {
	t.Helper()
	ix.SetHash(keyindex.HashFacts{SecretUID: types.UID(secretUID), KeyID: k.ID(), APIKeyUID: types.UID(apiKeyUID), Hash: hashOf(t, k)})
}

func argon2Runs(a *Authenticator) float64 {
	var m dto.Metric
	_ = a.metrics.argon2Total.Write(&m)
	return m.GetCounter().GetValue()
}

func TestArgon2RunsOncePerKeyWhileUnchanged(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	a, ix, k, facts := fixture(t, clk)
	ctx := context.Background()
	for i := range 3 {
		if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
			t.Fatalf("request %d refused: %+v", i, f)
		}
	}
	if n := argon2Runs(a); n != 1 {
		t.Errorf("argon2 ran %v times for 3 requests, want 1", n)
	}

	// A lastUsedAt update is not a change that matters.
	facts.LastUsedAt = clk.Now()
	ix.SetAPIKey(facts)
	a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	if n := argon2Runs(a); n != 1 {
		t.Errorf("argon2 ran again after a lastUsedAt update (%v runs)", n)
	}

	// A new hash Secret for the key is: verify again. (The controller
	// deletes the old Secret before it writes a new one; two at once would
	// be two claimants, and only the first would count.)
	ix.DeleteHash("hash-1")
	setHash(t, ix, k, "uid-1", "hash-2")
	if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
		t.Fatalf("after a new hash: %+v", f)
	}
	if n := argon2Runs(a); n != 2 {
		t.Errorf("argon2 runs = %v after the hash changed, want 2", n)
	}
}

func TestRefusalsArePreciseOnlyForProvenSecrets(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	a, ix, k, facts := fixture(t, clk)
	ctx := context.Background()
	wrong, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	forged, err := keys.WithID(wrong, k.ID())
	if err != nil {
		t.Fatal(err)
	}

	if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
		t.Fatal(f)
	}
	facts.ExpiresAt = clk.Now().Add(time.Minute)
	ix.SetAPIKey(facts)
	clk.Step(2 * time.Minute)

	cases := []struct {
		name, key, wantReason, wantMessageWord string
	}{
		{"owner of the expired key", k.Reveal(), "expired", "expired"},
		{"stranger with the expired key's ID", forged.Reveal(), "expired", "Incorrect"},
		{"malformed", "cvk_short", "malformed", "Incorrect"},
		{"bad checksum", badChecksum(k), "bad_checksum", "Incorrect"},
		{"unknown key ID", wrong.Reveal(), "unknown", "Incorrect"},
	}
	for _, tc := range cases {
		_, f := a.Authenticate(ctx, tc.key, "10.0.0.2")
		if f == nil || f.Status != 401 || f.Reason != tc.wantReason || !strings.Contains(f.Message, tc.wantMessageWord) {
			t.Errorf("%s: failure %+v, want 401 reason %q with %q in the message", tc.name, f, tc.wantReason, tc.wantMessageWord)
		}
	}

	facts.ExpiresAt = time.Time{}
	facts.Revoked = true
	ix.SetAPIKey(facts)
	if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f == nil || f.Reason != "revoked" || !strings.Contains(f.Message, "revoked") {
		t.Errorf("owner of a revoked key: %+v, want a precise revoked message", f)
	}
}

func TestWrongSecretsAreRateLimitedBeforeArgon2(t *testing.T) {
	a, _, k, _ := fixture(t, testingclock.NewFakeClock(time.Now()))
	ctx := context.Background()
	if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil { // the owner, verified once
		t.Fatal(f)
	}
	limited := 0
	for i := range 50 {
		other, _ := keys.Generate()
		forged, _ := keys.WithID(other, k.ID())
		_, f := a.Authenticate(ctx, forged.Reveal(), "10.0.0.66")
		if f == nil {
			t.Fatalf("attempt %d: a wrong secret was accepted", i)
		}
		if f.Reason == "rate_limited" {
			limited++
		}
	}
	if runs := argon2Runs(a); runs > 6 {
		t.Errorf("%v argon2 runs for 50 wrong secrets, want at most the burst (5) + the owner's 1", runs)
	}
	if limited < 40 {
		t.Errorf("only %d of 50 wrong secrets were rate limited", limited)
	}
	// The owner's key is still accepted: it is in the verified cache.
	if _, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
		t.Errorf("owner locked out by the flood: %+v", f)
	}
}

// Wrong secrets sent all at once, each for a different real key ID (so no
// per-key bucket stops them): a client verifies only slotsPerClient keys at
// a time, so its allowance is used up before more than slotsPerClient-1
// extra verifications could start. A client with many good keys, verified
// at once, is queued, not refused.
func TestConcurrentWrongSecretsGetOnlyTheClientsAllowance(t *testing.T) {
	ix := keyindex.New(nil)
	var real []keys.Key
	for i := range 60 {
		k, _ := keys.Generate()
		uid := fmt.Sprintf("uid-%d", i)
		ix.SetAPIKey(keyindex.APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: uid}, UID: types.UID(uid), KeyID: k.ID(), Phase: gatewayv1alpha1.PhaseActive})
		setHash(t, ix, k, uid, "hash-"+uid)
		real = append(real, k)
	}
	a := New(ix, Options{Clock: testingclock.NewFakeClock(time.Now()), ClientBurst: 10, Argon2Concurrency: 1})
	var wg sync.WaitGroup
	for _, k := range real[:40] {
		wg.Go(func() {
			other, _ := keys.Generate()
			forged, _ := keys.WithID(other, k.ID())
			a.Authenticate(context.Background(), forged.Reveal(), "10.0.0.66")
		})
	}
	wg.Wait()
	if runs := argon2Runs(a); runs > 10+slotsPerClient-1 {
		t.Errorf("%v argon2 runs for 40 simultaneous wrong secrets, want at most the client's allowance (10) + %d", runs, slotsPerClient-1)
	}

	// 20 good keys from one client, all cold: every one is verified.
	var refused atomic.Int32
	for _, k := range real[40:] {
		wg.Go(func() {
			if _, f := a.Authenticate(context.Background(), k.Reveal(), "10.0.0.1"); f != nil {
				refused.Add(1)
			}
		})
	}
	wg.Wait()
	if refused.Load() > 0 {
		t.Errorf("%d of 20 good keys from one client were refused: successes must not use up the allowance", refused.Load())
	}
}

// badChecksum is k with its last checksum character changed (to another
// character: a fixed replacement would leave one key in 62 unchanged).
func badChecksum(k keys.Key) string {
	s := k.Reveal()
	last := byte('x')
	if s[len(s)-1] == last {
		last = 'y'
	}
	return s[:len(s)-1] + string(last)
}
