package auth

import (
	"context"
	"errors"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/keys"
)

// During a rotation's grace period both keys of one APIKey authenticate,
// each verified once and cached apart (the cache is keyed by the full key
// and honours the entry's own key ID and version); at the end of the
// grace period the old key is refused as expired, before the controller
// has touched anything, and the new key still hits its cache entry; an
// in-flight request with the old key ends then too.
func TestRotatedKeysAreVerifiedAndCachedApart(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	a, ix, oldKey, facts := fixture(t, clk)
	ctx := context.Background()
	if _, f := a.Authenticate(ctx, oldKey.Reveal(), "10.0.0.1"); f != nil {
		t.Fatalf("old key before rotation: %+v", f)
	}

	newKey, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	graceEnds := clk.Now().Add(time.Hour)
	rotated := facts
	rotated.KeyID, rotated.Prefix = newKey.ID(), newKey.DisplayPrefix()
	rotated.PreviousKeyID, rotated.PreviousPrefix, rotated.PreviousExpiresAt = oldKey.ID(), oldKey.DisplayPrefix(), graceEnds
	ix.SetAPIKey(rotated)
	setHash(t, ix, newKey, "uid-1", "hash-2")

	runs := argon2Runs(a)
	var oldEntryKeyID string
	for range 2 {
		for _, k := range []keys.Key{oldKey, newKey} {
			e, f := a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
			if f != nil {
				t.Fatalf("%s during the grace period: %+v", k.DisplayPrefix(), f)
			}
			if e.KeyID != k.ID() {
				t.Errorf("%s authenticated as entry %s", k.DisplayPrefix(), e.KeyID)
			}
			if k == oldKey {
				oldEntryKeyID = e.KeyID
			}
		}
	}
	// The old key's entry changed (it is now the previous key), so it is
	// verified again once; the new key once; the repeats hit the cache.
	if n := argon2Runs(a) - runs; n != 2 {
		t.Errorf("argon2 ran %v times for 4 requests with 2 keys, want 2", n)
	}
	if a.verified.len() < 2 {
		t.Errorf("verified cache holds %d entries, want one per key", a.verified.len())
	}
	if oldEntryKeyID != oldKey.ID() {
		t.Errorf("old key's entry has key ID %s", oldEntryKeyID)
	}

	old, _ := a.Authenticate(ctx, oldKey.Reveal(), "10.0.0.1")
	reqCtx, req := a.track(ctx, old)
	defer req.done()

	clk.SetTime(graceEnds)
	if _, f := a.Authenticate(ctx, oldKey.Reveal(), "10.0.0.1"); f != failExpired {
		t.Errorf("old key at the end of its grace period: %+v, want expired", f)
	}
	runs = argon2Runs(a)
	if _, f := a.Authenticate(ctx, newKey.Reveal(), "10.0.0.1"); f != nil {
		t.Errorf("new key after the grace period: %+v", f)
	}
	if n := argon2Runs(a) - runs; n != 0 {
		t.Errorf("the end of the old key's grace period cost the new key %v argon2 runs", n)
	}
	select {
	case <-reqCtx.Done():
		if !errors.Is(context.Cause(reqCtx), ErrKeyExpired) {
			t.Errorf("in-flight request with the old key ended with %v, want ErrKeyExpired", context.Cause(reqCtx))
		}
	case <-time.After(time.Second):
		t.Error("an in-flight request with the old key outlived its grace period")
	}
}
