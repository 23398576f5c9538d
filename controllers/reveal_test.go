package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/reveal"
)

func TestRevealIsOneShotUnderConcurrentReaders(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	create(t, newKey(ns, "shared"))
	k := env.WaitForPhase(t, ns, "shared", gatewayv1alpha1.PhaseActive, 10*time.Second)

	// Each reader has its own client, as two console replicas would.
	const readers = 2
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]keys.Key, readers)
		errs    = make([]error, readers)
	)
	for i := range readers {
		c, err := client.New(env.Config, client.Options{Scheme: manager.Scheme()})
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = testenv.Reveal(context.Background(), c, k.DeepCopy())
		}()
	}
	close(start)
	wg.Wait()

	winners := 0
	for i := range readers {
		switch {
		case errs[i] == nil:
			winners++
			if results[i].DisplayPrefix() != k.Status.Prefix {
				t.Errorf("reader %d got key %s, want prefix %s", i, results[i], k.Status.Prefix)
			}
		case errors.Is(errs[i], reveal.ErrAlreadyRevealed):
			if errs[i].Error() != "the key has already been revealed and cannot be shown again; create a new key if you lost it" {
				t.Errorf("reader %d: unclear error %q", i, errs[i])
			}
		default:
			t.Errorf("reader %d: unexpected error %v", i, errs[i])
		}
	}
	if winners != 1 {
		t.Fatalf("%d readers got the key, want exactly 1 (errors: %v)", winners, errs)
	}

	// The controller notices and records it; a later reader is refused.
	testenv.Eventually(t, 10*time.Second, func() error {
		k = get(t, ns, "shared")
		if k.Status.Reveal == nil || k.Status.Reveal.State != gatewayv1alpha1.RevealConsumed {
			return errNotYet
		}
		return nil
	})
	if _, err := testenv.Reveal(context.Background(), env.Client, k); !errors.Is(err, reveal.ErrAlreadyRevealed) {
		t.Errorf("third reader: err = %v, want ErrAlreadyRevealed", err)
	}
	// The key itself keeps working: the hash is untouched.
	if _, ok := hashSecretOf(t, k); !ok || k.Status.Phase != gatewayv1alpha1.PhaseActive {
		t.Errorf("consuming the reveal changed the key: phase %s, hash present %v", k.Status.Phase, ok)
	}
}

// A reveal nobody consumes within the reveal window is withdrawn: its
// Secret is deleted and the reveal recorded Expired, and the key stays
// Active; not before the window ends. The test moves the manager's fake
// clock to the window's end instead of waiting it out.
func TestRevealWindowExpires(t *testing.T) {
	clk := testenv.FakeClock(t)
	// Shorter than the default, so that moving the clock to its end
	// crosses no deadline of the keys earlier tests left in the cluster.
	const window = time.Minute
	env.StartManager(t, manager.Options{Clock: clk, RevealWindow: window})
	ns := env.Namespace(t)
	create(t, newKey(ns, "unread"))
	k := env.WaitForPhase(t, ns, "unread", gatewayv1alpha1.PhaseActive, 10*time.Second)
	// The window starts when the API server created the reveal Secret.
	if got := k.Status.Reveal.ExpiresAt.Sub(k.CreationTimestamp.Time); got < window-time.Second || got > window+5*time.Second {
		t.Errorf("reveal window = %v after creation, want about %v", got, window)
	}
	if k.Status.Reveal.State != gatewayv1alpha1.RevealPending {
		t.Fatalf("reveal state %s before the window ended, want Pending", k.Status.Reveal.State)
	}

	testenv.AdvanceUntil(t, clk, k.Status.Reveal.ExpiresAt.Time, 10*time.Second, func() error {
		if k = get(t, ns, "unread"); k.Status.Reveal.State != gatewayv1alpha1.RevealExpired {
			return fmt.Errorf("reveal state %s, want Expired", k.Status.Reveal.State)
		}
		return nil
	})
	waitForSecretGone(t, ns, gatewayv1alpha1.RevealSecretName("unread"))
	if _, err := testenv.Reveal(context.Background(), env.Client, k); !errors.Is(err, reveal.ErrRevealExpired) {
		t.Errorf("consume after the window: err = %v, want ErrRevealExpired", err)
	}
	if k.Status.Phase != gatewayv1alpha1.PhaseActive {
		t.Errorf("phase = %s: an unread reveal must not disable the key", k.Status.Phase)
	}
}
