package auth

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys"
)

// A change to the index that lands after a request was authenticated but
// before it was registered as in flight finds no request to end: the
// request must look at the index again once registered, or it streams to
// its end with a revoked key.
func TestIndexChangeBetweenAuthenticationAndTrackingEndsTheRequest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(ix *keyindex.Index, k keys.Key, f keyindex.APIKeyFacts)
		want   error // nil: the request goes on
	}{
		{"revoked", func(ix *keyindex.Index, _ keys.Key, f keyindex.APIKeyFacts) {
			f.Revoked = true
			ix.SetAPIKey(f)
		}, ErrKeyRevoked},
		{"APIKey being deleted", func(ix *keyindex.Index, _ keys.Key, f keyindex.APIKeyFacts) {
			f.Deleting = true
			ix.SetAPIKey(f)
		}, ErrKeyRevoked},
		{"APIKey gone", func(ix *keyindex.Index, _ keys.Key, f keyindex.APIKeyFacts) {
			ix.DeleteAPIKey(f.Name)
		}, ErrKeyRevoked},
		{"hash gone", func(ix *keyindex.Index, _ keys.Key, _ keyindex.APIKeyFacts) {
			ix.DeleteHash("hash-1")
		}, ErrKeyRevoked},
		{"re-created under the same name", func(ix *keyindex.Index, k keys.Key, f keyindex.APIKeyFacts) {
			f.UID = "uid-2"
			ix.SetAPIKey(f)
			setHash(t, ix, k, "uid-2", "hash-2")
		}, ErrKeyRevoked},
		{"expired", func(ix *keyindex.Index, _ keys.Key, f keyindex.APIKeyFacts) {
			f.Phase = gatewayv1alpha1.PhaseExpired
			ix.SetAPIKey(f)
		}, ErrKeyExpired},
		// A newer version that still authenticates the key does not end it.
		{"hash Secret replaced", func(ix *keyindex.Index, k keys.Key, _ keyindex.APIKeyFacts) {
			ix.DeleteHash("hash-1")
			setHash(t, ix, k, "uid-1", "hash-2")
		}, nil},
		{"lastUsedAt written", func(ix *keyindex.Index, _ keys.Key, f keyindex.APIKeyFacts) {
			f.LastUsedAt = time.Now()
			ix.SetAPIKey(f)
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := keys.Generate()
			if err != nil {
				t.Fatal(err)
			}
			// As in the gateway, every index change from New on reaches
			// OnIndexChange.
			ix := keyindex.New(nil)
			f := keyindex.APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", KeyID: k.ID(),
				Prefix: k.DisplayPrefix(), Owner: "alice", Phase: gatewayv1alpha1.PhaseActive}
			ix.SetAPIKey(f)
			setHash(t, ix, k, "uid-1", "hash-1")
			a := New(ix, Options{})

			var cause error
			served := false
			h := a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				served = true
				cause = context.Cause(r.Context())
			}))
			a.afterAuthenticate = func() { tc.change(ix, k, f) }
			req := httptest.NewRequest(http.MethodPost, "/gateway/openai/v1/chat/completions", nil)
			req.Header.Set("Authorization", "Bearer "+k.Reveal())
			h.ServeHTTP(httptest.NewRecorder(), req)
			if !served {
				t.Fatal("the request was refused before the change; it should have been authenticated")
			}
			if tc.want == nil && cause != nil {
				t.Errorf("the handler saw its context cancelled (%v); the key still works", cause)
			}
			if tc.want != nil && !errors.Is(cause, tc.want) {
				t.Errorf("the handler saw cause %v, want %v: the request would stream on with a key that no longer works", cause, tc.want)
			}
		})
	}
}

// A request whose key expires while it is served (a long stream) ends at
// the expiry, by the Authenticator's clock, with ErrKeyExpired as its
// cause; not a moment before.
func TestKeyExpiringDuringARequestEndsIt(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	_, ix, k, facts := fixture(t, clk)
	facts.ExpiresAt = clk.Now().Add(time.Minute)
	ix.SetAPIKey(facts)
	a := New(ix, Options{Clock: clk})

	served := make(chan context.Context, 1)
	release := make(chan struct{})
	h := a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		served <- r.Context()
		<-release
	}))
	req := httptest.NewRequest(http.MethodPost, "/gateway/openai/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer "+k.Reveal())
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		done <- w.Code
	}()
	var ctx context.Context
	select {
	case ctx = <-served:
	case code := <-done:
		t.Fatalf("the key was refused (%d) before its expiry", code)
	}

	// The fake clock runs expiry callbacks within Step, so the request's
	// context is already ended (or not) when Step returns.
	clk.Step(time.Minute - time.Second)
	if err := context.Cause(ctx); err != nil {
		t.Errorf("a second before the expiry the request's context ended: %v", err)
	}
	clk.Step(time.Second)
	if err := context.Cause(ctx); !errors.Is(err, ErrKeyExpired) {
		t.Errorf("at the expiry the request's context ended with %v, want %v", err, ErrKeyExpired)
	}
	close(release)
	<-done
}
