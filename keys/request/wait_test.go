package request_test

import (
	"context"
	"errors"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// newKey creates APIKey ns/name sealed to a key pair made for it, as the
// console and the CLI do, and returns it and the private half.
func newKey(t *testing.T, ns, name string) (*gatewayv1alpha1.APIKey, *seal.PrivateKey) {
	t.Helper()
	private, err := seal.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	k.Spec.RevealPublicKey = private.PublicKey()
	if err := env.Client.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	return k, private
}

// A new key, then a rotation of it: each received once, through the one
// loop the console and the CLI share.
func TestReceiveIssuedThenRotatedKey(t *testing.T) {
	ctx := context.Background()
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	k, private := newKey(t, ns, "laptop")
	nn := client.ObjectKeyFromObject(k)

	issued, first, err := request.Receive(ctx, env.Client, nn, k.UID, 15*time.Second, nil, private)
	if err != nil {
		t.Fatalf("receiving the new key: %v", err)
	}
	env.Issued(first)
	if issued.Status.Phase != gatewayv1alpha1.PhaseActive || first.DisplayPrefix() != issued.Status.Prefix {
		t.Fatalf("received %s of a key that is %s with prefix %s", first.DisplayPrefix(), issued.Status.Phase, issued.Status.Prefix)
	}
	if again, _, err := request.Receive(ctx, env.Client, nn, k.UID, 5*time.Second, nil, private); !errors.Is(err, reveal.ErrAlreadyRevealed) || again == nil {
		t.Errorf("a second receive: %v (APIKey returned: %v), want ErrAlreadyRevealed once issued", err, again != nil)
	}

	rotPrivate, err := seal.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	// The manager writes the key after its reveal (Consumed, and it drops
	// the public key): the rotation is of the key as read, so a conflict
	// means read again, as the console and the CLI do.
	var rotation request.Rotation
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(ctx, nn, live); err != nil {
			return err
		}
		if rotation, err = request.NewRotation(live, time.Now(), time.Hour, rotPrivate.PublicKey(), ""); err != nil {
			return err
		}
		return env.Client.Patch(ctx, live, rotation.Patch)
	}); err != nil {
		t.Fatal(err)
	}
	rotated, second, err := request.Receive(ctx, env.Client, nn, k.UID, 15*time.Second, rotation.Done, rotPrivate)
	if err != nil {
		t.Fatalf("receiving the rotated key: %v", err)
	}
	env.Issued(second)
	if second.ID() == first.ID() || !rotation.Done(rotated) || rotated.Status.Previous == nil || rotated.Status.Previous.Prefix != first.DisplayPrefix() {
		t.Errorf("after the rotation: received %s, status %+v; want a new key, %s previous", second.DisplayPrefix(), rotated.Status, first.DisplayPrefix())
	}
}

// Without a controller the wait ends at its timeout, saying the key is
// still Pending; a key deleted, or deleted and made again, ends it at once.
func TestAwaitGivesUp(t *testing.T) {
	ctx := context.Background()
	ns := env.Namespace(t)
	k, _ := newKey(t, ns, "nobody-issues")
	nn := client.ObjectKeyFromObject(k)

	start := time.Now()
	_, err := request.Await(ctx, env.Client, nn, k.UID, time.Second, nil)
	var late *request.TimeoutError
	if !errors.As(err, &late) || !errors.Is(err, request.ErrTimeout) || late.Phase != gatewayv1alpha1.PhasePending {
		t.Errorf("waiting with no controller: %v, want a timeout in phase Pending", err)
	}
	if took := time.Since(start); took < time.Second || took > 10*time.Second {
		t.Errorf("the wait took %v, want about its 1s timeout", took)
	}

	// Ended by a status no wait can get past.
	base := k.DeepCopy()
	k.Status.Phase = gatewayv1alpha1.PhaseRevoked
	if err := env.Client.Status().Patch(ctx, k, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	if _, err := request.Await(ctx, env.Client, nn, k.UID, 10*time.Second, nil); !errors.Is(err, reveal.ErrNotActive) {
		t.Errorf("waiting for a Revoked key: %v, want reveal.ErrNotActive", err)
	}

	if err := env.Client.Delete(ctx, k); err != nil {
		t.Fatal(err)
	}
	again, _ := newKey(t, ns, "nobody-issues")
	start = time.Now()
	if _, err := request.Await(ctx, env.Client, nn, k.UID, 10*time.Second, nil); !errors.Is(err, request.ErrGone) {
		t.Errorf("waiting for a key deleted and created again: %v, want ErrGone", err)
	}
	if err := env.Client.Delete(ctx, again); err != nil {
		t.Fatal(err)
	}
	if _, err := request.Await(ctx, env.Client, types.NamespacedName{Namespace: ns, Name: "nobody-issues"}, "", 10*time.Second, nil); !errors.Is(err, request.ErrGone) {
		t.Errorf("waiting for a deleted key: %v, want ErrGone", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("noticing the deletions took %v, want them noticed at once", took)
	}
}
