package kubectlplugin

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
)

// TestKeysCLIDelete deletes keys as their owner, an ordinary user with the
// editor role whose requests meet RBAC and the admission policies: revoked
// and expired keys at once, an Active one only when confirmed; the hash
// Secret goes with the key; a teammate cannot delete it.
func TestKeysCLIDelete(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	ctx := context.Background()
	const owner = "alice@example.com"
	alice := userKubeconfig(t, e, owner, ns, editor, revealer)
	bob := userKubeconfig(t, e, "bob@example.com", ns, editor)
	asAlice, err := e.ClientAs(owner)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"laptop", "old", "ci"} {
		if _, stderr, err := keysRun(alice, "", "create", name); err != nil {
			t.Fatalf("create %s: %v\n%s", name, err, stderr)
		}
	}
	// Revoked by its owner (a patch: not through the revoke command).
	old := e.WaitForPhase(t, ns, "old", gatewayv1alpha1.PhaseActive, 15*time.Second)
	if err := asAlice.Patch(ctx, old, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))); err != nil {
		t.Fatal(err)
	}
	e.WaitForPhase(t, ns, "old", gatewayv1alpha1.PhaseRevoked, 15*time.Second)
	// Expired: an expiry already past at creation.
	past := metav1.NewTime(time.Now().Add(-time.Hour))
	if err := asAlice.Create(ctx, &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "gone"},
		Spec: gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}}); err != nil {
		t.Fatal(err)
	}
	e.WaitForPhase(t, ns, "gone", gatewayv1alpha1.PhaseExpired, 15*time.Second)
	// The CLI refuses to rotate what no longer works by the rule the
	// console follows (keys/access), before making a key pair.
	for _, name := range []string{"old", "gone"} {
		if _, stderr, err := keysRun(alice, "", "rotate", name); err == nil || !strings.Contains(stderr+err.Error(), "only an Active key can be rotated; create a new key instead") {
			t.Errorf("rotating %s: %v\n%s", name, err, stderr)
		}
	}

	exists := func(name string) *gatewayv1alpha1.APIKey {
		t.Helper()
		k := &gatewayv1alpha1.APIKey{}
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, k)
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	hashGone := func(k *gatewayv1alpha1.APIKey) {
		t.Helper()
		err := e.Client.Get(ctx, types.NamespacedName{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: gatewayv1alpha1.HashSecretName(string(k.UID))}, &corev1.Secret{})
		if !apierrors.IsNotFound(err) {
			t.Errorf("the hash Secret of %s: %v, want it deleted", k.Name, err)
		}
	}

	// An Active key: refused without a confirmation, saying it stops working.
	laptop := exists("laptop")
	stdout, stderr, err := keysRun(alice, "", "delete", "laptop")
	if err == nil || !strings.Contains(err.Error(), "not deleted") || !strings.Contains(err.Error(), "--yes") {
		t.Errorf("delete of an Active key without confirmation: %v, want a refusal that names --yes", err)
	}
	for _, want := range []string{"is Active", "stops it working", "rejected (401)", "Type yes to delete"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("delete's prompt lacks %q:\n%s", want, stderr)
		}
	}
	if _, _, err := keysRun(alice, "no\n", "delete", "laptop"); err == nil || err.Error() != "not deleted" {
		t.Errorf("delete answered no: %v, want not deleted", err)
	}
	if stdout != "" || exists("laptop") == nil {
		t.Fatalf("the Active key was deleted without a confirmation (stdout %q)", stdout)
	}

	// A teammate with the editor role cannot delete it, even with --yes.
	_, _, err = keysRun(bob, "", "delete", "ci", "--yes")
	if err == nil || !strings.Contains(err.Error(), "belongs to alice@example.com") {
		t.Errorf("bob deleting alice's key: %v, want the admission policy's refusal", err)
	}
	if exists("ci") == nil {
		t.Fatal("bob deleted alice's key")
	}

	// Revoked and expired keys go at once, unasked; delete returns once
	// the manager's finalizer has let them go.
	for _, name := range []string{"old", "gone"} {
		k := exists(name)
		stdout, stderr, err := keysRun(alice, "", "delete", name)
		if err != nil {
			t.Fatalf("delete %s: %v\n%s", name, err, stderr)
		}
		if stdout != "apikey \""+name+"\" deleted\n" || !strings.Contains(stderr, "hash Secret") || strings.Contains(stderr, "Type yes") {
			t.Errorf("delete %s printed %q on stdout and on stderr:\n%s", name, stdout, stderr)
		}
		if exists(name) != nil {
			t.Errorf("%s is still there after delete returned", name)
		}
		hashGone(k)
	}

	// The Active key, confirmed (typed, then --yes): the finalizer deletes
	// its hash Secret before the APIKey goes.
	if _, stderr, err := keysRun(alice, "yes\n", "delete", "laptop"); err != nil {
		t.Fatalf("delete laptop, confirmed: %v\n%s", err, stderr)
	} else if !strings.Contains(stderr, "401") {
		t.Errorf("delete of an Active key does not say it stops working:\n%s", stderr)
	}
	if exists("laptop") != nil {
		t.Error("laptop is still there after delete returned")
	}
	hashGone(laptop)
	ci := exists("ci")
	if _, stderr, err := keysRun(alice, "", "delete", "ci", "--yes"); err != nil {
		t.Fatalf("delete ci --yes: %v\n%s", err, stderr)
	}
	hashGone(ci)

	if _, _, err := keysRun(alice, "", "delete", "ci"); err == nil || !strings.Contains(err.Error(), `APIKey "ci" not found in namespace "`+ns+`"`) {
		t.Errorf("delete of a key that is gone: %v", err)
	}
}
