package request

import (
	"context"
	"errors"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

var (
	// ErrTimeout: the controller did not carry out the request in time
	// (a *TimeoutError says more).
	ErrTimeout = errors.New("the controller did not carry out the request in time")
	// ErrGone: the APIKey was deleted (or deleted and created again)
	// while waiting.
	ErrGone = errors.New("the key was deleted")
)

// TimeoutError is Await's answer when the controller did not carry out
// the request in time.
type TimeoutError struct {
	Key types.NamespacedName
	// Phase is the APIKey's phase when last read (Pending when never).
	Phase gatewayv1alpha1.Phase
	After time.Duration
}

func (e *TimeoutError) Error() string {
	return fmt.Sprintf("%v: APIKey %s is still %s after %v", ErrTimeout, e.Key, e.Phase, e.After)
}

func (e *TimeoutError) Unwrap() error { return ErrTimeout }

// pollInterval is how often Await reads the APIKey: a person is waiting,
// and one GET of one object a tenth of a second, for a few seconds, is
// nothing to the API server.
const pollInterval = 100 * time.Millisecond

// Await waits until the controller has carried out a request of the
// APIKey nn: it is Active and done holds of it (nil: Active is enough, as
// for a new key; Rotation.Done for a rotation). It reads from c, which
// must be the API server, not a cache (a gateway's index and the
// manager's cache hold no status.rotatedAt or status.reveal). uid, when
// not empty, is the APIKey the request was made of: another of the same
// name is ErrGone.
//
// It stops early when no key will come: with ErrGone, or with
// reveal.ErrNotActive for a key revoked, expired or failed (and the Ready
// condition's message for a Failed key); after timeout with
// ErrTimeout and the phase last seen. Errors the API server may answer
// while busy are waited out; others are returned as they are.
func Await(ctx context.Context, c client.Reader, nn types.NamespacedName, uid types.UID, timeout time.Duration, done func(*gatewayv1alpha1.APIKey) bool) (*gatewayv1alpha1.APIKey, error) {
	var last *gatewayv1alpha1.APIKey
	err := wait.PollUntilContextTimeout(ctx, pollInterval, timeout, true, func(ctx context.Context) (bool, error) {
		k := &gatewayv1alpha1.APIKey{}
		if err := c.Get(ctx, nn, k); err != nil {
			switch {
			case apierrors.IsNotFound(err):
				return false, fmt.Errorf("APIKey %s: %w", nn, ErrGone)
			case atDeadline(ctx):
				// At the deadline a client-go request fails first in its
				// rate limiter ("would exceed context deadline"), a moment
				// before the context itself says so: that is the timeout.
				return false, context.DeadlineExceeded
			case transient(err):
				return false, nil
			}
			return false, fmt.Errorf("reading APIKey %s: %w", nn, err)
		}
		if uid != "" && k.UID != uid {
			return false, fmt.Errorf("APIKey %s: %w and created again", nn, ErrGone)
		}
		last = k
		switch k.Status.Phase {
		case gatewayv1alpha1.PhaseActive:
			return done == nil || done(k), nil
		case gatewayv1alpha1.PhaseRevoked, gatewayv1alpha1.PhaseExpired:
			return false, fmt.Errorf("APIKey %s is %s: %w", nn, k.Status.Phase, reveal.ErrNotActive)
		case gatewayv1alpha1.PhaseFailed:
			why := ""
			if cond := meta.FindStatusCondition(k.Status.Conditions, gatewayv1alpha1.ConditionReady); cond != nil {
				why = " (" + cond.Message + ")"
			}
			return false, fmt.Errorf("APIKey %s failed%s: %w", nn, why, reveal.ErrNotActive)
		}
		return false, nil
	})
	switch {
	case err == nil:
		return last, nil
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		// The caller gave up (a closed connection, an interrupt): not the
		// controller's fault.
		return nil, ctx.Err()
	case wait.Interrupted(err) || errors.Is(err, context.DeadlineExceeded):
		phase := gatewayv1alpha1.PhasePending
		if last != nil && last.Status.Phase != "" {
			phase = last.Status.Phase
		}
		return nil, &TimeoutError{Key: nn, Phase: phase, After: timeout}
	default:
		return nil, err
	}
}

// Receive waits until the controller has carried out the request (Await),
// then consumes the reveal of its key (keys/reveal: once, whoever else
// tries) with private, the private half of the public key the request
// carried. c must read from the API server.
//
// The APIKey comes back as soon as the controller has issued the key,
// even when the reveal then fails: a caller tells "no key came" (nil)
// from "a key came but could not be shown" (not nil) by it.
func Receive(ctx context.Context, c client.Client, nn types.NamespacedName, uid types.UID, timeout time.Duration, done func(*gatewayv1alpha1.APIKey) bool, private *seal.PrivateKey) (*gatewayv1alpha1.APIKey, keys.Key, error) {
	issued, err := Await(ctx, c, nn, uid, timeout, done)
	if err != nil {
		return nil, keys.Key{}, err
	}
	k, err := reveal.Consume(ctx, c, issued, private)
	if err != nil {
		return issued, keys.Key{}, err
	}
	return issued, k, nil
}

// atDeadline: ctx has ended, or ends within the next moment.
func atDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ctx.Err() != nil || ok && !time.Now().Before(dl.Add(-10*time.Millisecond))
}

// transient: an answer of a busy or restarting API server, worth waiting
// out rather than failing a request the controller may be carrying out.
func transient(err error) bool {
	return apierrors.IsTooManyRequests(err) || apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) ||
		apierrors.IsServiceUnavailable(err) || apierrors.IsInternalError(err)
}
