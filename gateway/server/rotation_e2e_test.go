package server_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// rotateKey asks for a rotation of k as `kubectl apikey rotate --grace`
// does, waits for the controller to carry it out, and reveals the new key.
func rotateKey(t *testing.T, k *gatewayv1alpha1.APIKey, grace time.Duration) (*gatewayv1alpha1.APIKey, keys.Key) {
	t.Helper()
	requestedAt := metav1.NewTime(time.Now().Truncate(time.Second))
	patch(t, k, func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Rotation = &gatewayv1alpha1.Rotation{RequestedAt: requestedAt, GracePeriod: &metav1.Duration{Duration: grace},
			RevealPublicKey: testenv.RevealKey().PublicKey()}
	})
	var rotated *gatewayv1alpha1.APIKey
	testenv.Eventually(t, 10*time.Second, func() error {
		rotated = get(t, k.Namespace, k.Name)
		if rotated.Status.RotatedAt == nil || !rotated.Status.RotatedAt.Equal(&requestedAt) {
			return fmt.Errorf("status.rotatedAt = %v, want %v", rotated.Status.RotatedAt, requestedAt)
		}
		return nil
	})
	newKey, err := testenv.Reveal(context.Background(), env.Client, rotated)
	if err != nil {
		t.Fatalf("revealing the rotated key: %v", err)
	}
	return rotated, newKey
}

// answers waits until every replica answers key with want.
func answers(t *testing.T, replicas []*gateway, key keys.Key, want int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error { return allAnswer(t, replicas, key, want) })
}

func allAnswer(t *testing.T, replicas []*gateway, key keys.Key, want int) error {
	for i, gw := range replicas {
		if status, _, body := chat(t, gw.URL, key.Reveal()); status != want {
			return fmt.Errorf("replica %d answered %s with %d, want %d: %s", i, key.DisplayPrefix(), status, want, body)
		}
	}
	return nil
}

// During a rotation's grace period both keys work on every replica, and
// the old one's use is recorded in status.previous.lastUsedAt; once the
// grace period has passed on the (shared, fake) clock, every replica
// refuses the old key with 401 and still accepts the new one.
func TestRotationGracePeriodOnEveryReplica(t *testing.T) {
	clk := testenv.FakeClock(t)
	env.StartManager(t, manager.Options{Clock: clk})
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	const interval = 30 * time.Second
	replicas := []*gateway{
		startGateway(t, server.Options{Providers: providers, Clock: clk, LastUsedInterval: interval}),
		startGateway(t, server.Options{Providers: providers, Clock: clk, LastUsedInterval: interval}),
	}
	ns := env.Namespace(t)
	k, oldKey := env.IssueKey(t, ns, "rotating")
	answers(t, replicas, oldKey, http.StatusOK)

	rotated, newKey := rotateKey(t, k, 2*time.Minute)
	answers(t, replicas, newKey, http.StatusOK)
	if err := allAnswer(t, replicas, oldKey, http.StatusOK); err != nil {
		t.Fatalf("during the grace period: %v", err)
	}

	// The old key's use goes to status.previous.lastUsedAt, not to the
	// new key's lastUsedAt.
	oldUse := clk.Now()
	clk.Step(interval)
	testenv.Eventually(t, 5*time.Second, func() error {
		p := get(t, ns, "rotating").Status.Previous
		if p == nil || p.LastUsedAt == nil {
			return fmt.Errorf("status.previous = %+v, want its lastUsedAt", p)
		}
		if p.LastUsedAt.Time.Before(oldUse.Add(-2 * time.Second).Truncate(time.Second)) {
			return fmt.Errorf("previous.lastUsedAt = %v, before the old key's last use %v", p.LastUsedAt, oldUse)
		}
		return nil
	})

	graceEnds := rotated.Status.Previous.ExpiresAt.Time
	testenv.AdvanceUntil(t, clk, graceEnds, 10*time.Second, func() error {
		return allAnswer(t, replicas, oldKey, http.StatusUnauthorized)
	})
	for i, gw := range replicas {
		status, h, body := chat(t, gw.URL, oldKey.Reveal())
		assert401(t, fmt.Sprintf("replica %d, old key after the grace period", i), status, h, body)
	}
	if err := allAnswer(t, replicas, newKey, http.StatusOK); err != nil {
		t.Errorf("after the grace period: %v", err)
	}
	// And so it stays once the controller has deleted the old hash.
	testenv.Eventually(t, 10*time.Second, func() error {
		if p := get(t, ns, "rotating").Status.Previous; p != nil {
			return fmt.Errorf("status.previous still %+v", p)
		}
		return nil
	})
	if err := allAnswer(t, replicas, oldKey, http.StatusUnauthorized); err != nil {
		t.Error(err)
	}
	if err := allAnswer(t, replicas, newKey, http.StatusOK); err != nil {
		t.Error(err)
	}
}

// `--grace 0`: the old key is refused on every replica at once.
func TestRotationWithoutGraceEndsTheOldKeyAtOnce(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	replicas := []*gateway{startGateway(t, server.Options{Providers: providers}), startGateway(t, server.Options{Providers: providers})}
	k, oldKey := env.IssueKey(t, env.Namespace(t), "no-grace")
	answers(t, replicas, oldKey, http.StatusOK)

	_, newKey := rotateKey(t, k, 0)
	answers(t, replicas, newKey, http.StatusOK)
	answers(t, replicas, oldKey, http.StatusUnauthorized)
}

// Revoking a key during a rotation's grace period ends both keys on every
// replica.
func TestRevocationDuringGracePeriodEndsBothKeys(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	replicas := []*gateway{startGateway(t, server.Options{Providers: providers}), startGateway(t, server.Options{Providers: providers})}
	k, oldKey := env.IssueKey(t, env.Namespace(t), "rotate-then-revoke")
	rotated, newKey := rotateKey(t, k, time.Hour)
	answers(t, replicas, newKey, http.StatusOK)
	answers(t, replicas, oldKey, http.StatusOK)

	patch(t, rotated, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	answers(t, replicas, oldKey, http.StatusUnauthorized)
	answers(t, replicas, newKey, http.StatusUnauthorized)
}

// A teammate who may create Secrets in the namespace (the built-in edit
// role gives that) puts an Opaque Secret at a key's reveal name, before the key is
// issued and after it was revealed. Neither the issue nor the owner's
// rotation of a leaked key waits on it: the rotation completes and, with
// no grace period, the old key gets 401 at once. The planted Secrets are
// neither read nor touched (issue 24).
func TestPlantedSecretAtTheRevealNameBlocksNeitherIssueNorRotation(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	ns := env.Namespace(t)
	ctx := context.Background()
	const mallory = "mallory@example.com"
	// What the built-in edit role gives on Secrets (its aggregation needs
	// kube-controller-manager, which the tests do not run).
	for _, o := range []client.Object{
		&rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secrets-editor"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "delete"}}},
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secrets-editor-mallory"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "secrets-editor"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: mallory}},
		},
	} {
		if err := env.Client.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	teammate, err := env.ClientAs(mallory)
	if err != nil {
		t.Fatal(err)
	}
	plant := func(apiKeyName string) *corev1.Secret {
		t.Helper()
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: gatewayv1alpha1.RevealSecretName(apiKeyName)},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"note": []byte("planted")},
		}
		if err := teammate.Create(ctx, s); err != nil {
			t.Fatalf("the teammate planting %s: %v", s.Name, err)
		}
		return s
	}
	untouched := func(planted *corev1.Secret) {
		t.Helper()
		now := &corev1.Secret{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: planted.Name}, now); err != nil || now.UID != planted.UID || string(now.Data["note"]) != "planted" {
			t.Errorf("the planted Secret %s was changed or deleted (err %v)", planted.Name, err)
		}
	}

	// The first issue of a key.
	first := plant("first")
	k, key := env.IssueKey(t, ns, "first")
	if name := gatewayv1alpha1.RevealSecretNameOf(k); name == first.Name {
		t.Errorf("status.reveal names the planted Secret %s", name)
	}
	answers(t, []*gateway{gw}, key, http.StatusOK)

	// The rotation of a leaked key.
	k, leaked := env.IssueKey(t, ns, "leaked")
	answers(t, []*gateway{gw}, leaked, http.StatusOK)
	second := plant("leaked")
	_, rotatedKey := rotateKey(t, k, 0)
	answers(t, []*gateway{gw}, leaked, http.StatusUnauthorized)
	answers(t, []*gateway{gw}, rotatedKey, http.StatusOK)

	untouched(first)
	untouched(second)
}
