package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
)

// gatewayClient acts as the gateway's service account, with the RBAC that
// config/rbac gives it.
func gatewayClient(t *testing.T) client.Client {
	t.Helper()
	c, err := env.ClientAs("system:serviceaccount:"+gatewayv1alpha1.DefaultSystemNamespace+":codevector-gateway",
		"system:serviceaccounts", "system:serviceaccounts:"+gatewayv1alpha1.DefaultSystemNamespace)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A rotation the console asks for of a key in a team namespace is
// revealed in the system namespace, the one place the gateway may read
// Secrets, under a name the manager derives from the APIKey's UID. Only
// the gateway may ask for that: the owner and admins are refused. The
// reveal is still consumed once, and collected when the key is revoked
// unread.
func TestConsoleRotationRevealsInTheSystemNamespace(t *testing.T) {
	ctx := context.Background()
	env.StartManager(t, manager.Options{})
	ns, alice, carol := teamNamespace(t)
	gateway := gatewayClient(t)
	if err := alice.Create(ctx, newKey(ns, "ci")); err != nil {
		t.Fatal(err)
	}
	k := env.WaitForPhase(t, ns, "ci", gatewayv1alpha1.PhaseActive, 15*time.Second)
	if _, err := testenv.Reveal(ctx, env.Client, k); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: ns, Name: "ci"}

	// As the console and the CLI ask: of the key as read, read again when
	// the manager wrote it meanwhile.
	rotate := func(c client.Client, in gatewayv1alpha1.RevealLocation) (r request.Rotation, err error) {
		return r, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			live := get(t, ns, "ci")
			if r, err = request.NewRotation(live, time.Now(), time.Hour, testenv.RevealKey().PublicKey(), in); err != nil {
				return err
			}
			return c.Patch(ctx, live, r.Patch)
		})
	}
	if _, err := rotate(alice, gatewayv1alpha1.RevealInSystemNamespace); err == nil || !strings.Contains(err.Error(), "only the console can ask for spec.rotation.revealIn") {
		t.Errorf("the owner asking for the reveal in the system namespace: %v", err)
	}
	if _, err := rotate(carol, gatewayv1alpha1.RevealInSystemNamespace); err == nil {
		t.Error("an admin asked for the reveal of alice's key in the system namespace")
	}
	planted := newKey(ns, "planted", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Rotation = &gatewayv1alpha1.Rotation{RequestedAt: metav1.Now(), RevealPublicKey: testenv.RevealKey().PublicKey(), RevealIn: gatewayv1alpha1.RevealInSystemNamespace}
	})
	if err := alice.Create(ctx, planted); err == nil || !strings.Contains(err.Error(), "only the console can ask for spec.rotation.revealIn") {
		t.Errorf("the owner creating a key whose rotation is revealed in the system namespace: %v", err)
	}

	r, err := rotate(gateway, gatewayv1alpha1.RevealInSystemNamespace)
	if err != nil {
		t.Fatalf("the gateway asking for a rotation revealed in the system namespace: %v", err)
	}
	issued, plain, err := request.Receive(ctx, gateway, nn, k.UID, 15*time.Second, r.Done, testenv.RevealKey())
	if err != nil {
		t.Fatalf("the gateway receiving the rotated key: %v", err)
	}
	env.Issued(plain)
	want := gatewayv1alpha1.SystemRevealSecretName(string(k.UID))
	if rs := issued.Status.Reveal; rs.SecretNamespace != gatewayv1alpha1.DefaultSystemNamespace || rs.SecretName != want || plain.DisplayPrefix() != issued.Status.Prefix {
		t.Errorf("status.reveal %+v, want %s/%s", rs, gatewayv1alpha1.DefaultSystemNamespace, want)
	}
	if _, ok := secret(t, ns, gatewayv1alpha1.RevealSecretName("ci")); ok {
		t.Error("a reveal Secret was written next to the key too")
	}
	if _, _, err := request.Receive(ctx, gateway, nn, k.UID, 5*time.Second, r.Done, testenv.RevealKey()); err == nil {
		t.Error("the rotated key was revealed twice")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if st := get(t, ns, "ci").Status.Reveal.State; st != gatewayv1alpha1.RevealConsumed {
			return errNotYet
		}
		return nil
	})

	// The owner rotates from a terminal next: the console's revealIn does
	// not stay (it would be refused), and the reveal is next to the key.
	r, err = rotate(alice, "")
	if err != nil {
		t.Fatalf("the owner rotating after the console did: %v", err)
	}
	issued, plain, err = request.Receive(ctx, env.Client, nn, k.UID, 15*time.Second, r.Done, testenv.RevealKey())
	if err != nil {
		t.Fatalf("receiving the owner's rotation: %v", err)
	}
	env.Issued(plain)
	if rs := issued.Status.Reveal; rs.SecretNamespace != "" || rs.SecretName != gatewayv1alpha1.RevealSecretName("ci") {
		t.Errorf("status.reveal of the owner's rotation %+v, want next to the key", rs)
	}

	// Unread, the system namespace's reveal goes with the key.
	if r, err = rotate(gateway, gatewayv1alpha1.RevealInSystemNamespace); err != nil {
		t.Fatal(err)
	}
	if _, err := request.Await(ctx, env.Client, nn, k.UID, 15*time.Second, r.Done); err != nil {
		t.Fatal(err)
	}
	if _, ok := secret(t, gatewayv1alpha1.DefaultSystemNamespace, want); !ok {
		t.Fatal("no reveal Secret in the system namespace")
	}
	if err := patchSpec(t, get(t, ns, "ci"), func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true }); err != nil {
		t.Fatal(err)
	}
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, want)
}

// Nobody reads a console rotation's reveal: the manager deletes it from
// the system namespace when the reveal window ends, as it does one next
// to the key, and the new key cannot be revealed any more.
func TestConsoleRotationRevealWindowExpires(t *testing.T) {
	ctx := context.Background()
	clk := testenv.FakeClock(t)
	// Short, so that moving the clock crosses no deadline of earlier keys.
	env.StartManager(t, manager.Options{Clock: clk, RevealWindow: time.Minute})
	ns := env.Namespace(t)
	create(t, newKey(ns, "unread"))
	k := env.WaitForPhase(t, ns, "unread", gatewayv1alpha1.PhaseActive, 10*time.Second)
	if _, err := testenv.Reveal(ctx, env.Client, k); err != nil {
		t.Fatal(err)
	}
	nn := types.NamespacedName{Namespace: ns, Name: "unread"}
	var r request.Rotation
	if err := retry.RetryOnConflict(retry.DefaultRetry, func() (err error) {
		live := get(t, ns, "unread")
		if r, err = request.NewRotation(live, time.Now(), time.Hour, testenv.RevealKey().PublicKey(), gatewayv1alpha1.RevealInSystemNamespace); err != nil {
			return err
		}
		return gatewayClient(t).Patch(ctx, live, r.Patch)
	}); err != nil {
		t.Fatal(err)
	}
	rotated, err := request.Await(ctx, env.Client, nn, k.UID, 15*time.Second, r.Done)
	if err != nil {
		t.Fatal(err)
	}
	name := gatewayv1alpha1.SystemRevealSecretName(string(k.UID))
	if _, ok := secret(t, gatewayv1alpha1.DefaultSystemNamespace, name); !ok {
		t.Fatal("no reveal Secret in the system namespace")
	}
	testenv.AdvanceUntil(t, clk, rotated.Status.Reveal.ExpiresAt.Time, 10*time.Second, func() error {
		if st := get(t, ns, "unread").Status.Reveal.State; st != gatewayv1alpha1.RevealExpired {
			return fmt.Errorf("reveal state %s, want Expired", st)
		}
		return nil
	})
	waitForSecretGone(t, gatewayv1alpha1.DefaultSystemNamespace, name)
	if _, _, err := request.Receive(ctx, gatewayClient(t), nn, k.UID, 5*time.Second, r.Done, testenv.RevealKey()); !errors.Is(err, reveal.ErrRevealExpired) {
		t.Errorf("receiving after the window: %v, want ErrRevealExpired", err)
	}
}
