package controllers_test

import (
	"context"
	"strings"
	"testing"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
)

// userClient returns a client authenticated as a real user of the API
// server (a client certificate), bound to the APIKey editor role in ns.
func userClient(t *testing.T, ns, name string, groups ...string) client.Client {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apikey-editor-" + strings.ReplaceAll(name, "@", "-at-")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "codevector-apikey-editor"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}},
	}
	if err := env.Client.Create(context.Background(), binding); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(u.Config(), client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// teamNamespace is a fresh namespace where alice is a plain member (the
// editor role) and carol an admin (the admin group as well), both real users
// of the API server whose requests meet RBAC and the admission policies.
func teamNamespace(t *testing.T) (ns string, alice, carol client.Client) {
	t.Helper()
	if err := env.ApplyFile(context.Background(), env.Root+"/config/rbac/apikey_editor_role.yaml"); err != nil {
		t.Fatal(err)
	}
	ns = env.Namespace(t)
	return ns, userClient(t, ns, "alice@example.com"), userClient(t, ns, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
}

func TestAdmissionPoliciesEnforceOwnership(t *testing.T) {
	ctx := context.Background()
	ns, alice, carol := teamNamespace(t)

	// alice's key gets her as owner without her saying so.
	own := newKey(ns, "alice-laptop")
	if err := alice.Create(ctx, own); err != nil {
		t.Fatalf("alice creating her own key: %v", err)
	}
	if own.Spec.Owner != "alice@example.com" {
		t.Errorf("owner = %q, want alice@example.com (defaulted by the mutating policy)", own.Spec.Owner)
	}
	explicit := newKey(ns, "alice-ci", func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "alice@example.com" })
	if err := alice.Create(ctx, explicit); err != nil {
		t.Errorf("alice naming herself as owner: %v", err)
	}

	// alice cannot create a key for bob.
	err := alice.Create(ctx, newKey(ns, "for-bob", func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "bob@example.com" }))
	if err == nil {
		t.Fatal("alice created a key owned by bob")
	}
	for _, want := range []string{"spec.owner must be your own username (alice@example.com)", gatewayv1alpha1.DefaultAdminGroup} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}

	// An admin can.
	forBob := newKey(ns, "bob-by-admin", unsealed, func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "bob@example.com" })
	if err := carol.Create(ctx, forBob); err != nil {
		t.Fatalf("admin creating a key for bob: %v", err)
	}
	if forBob.Spec.Owner != "bob@example.com" {
		t.Errorf("owner = %q, want bob@example.com", forBob.Spec.Owner)
	}

	// Nobody can change an owner afterwards, admins included.
	for name, c := range map[string]client.Client{"alice": alice, "admin": carol} {
		k := &gatewayv1alpha1.APIKey{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(own), k); err != nil {
			t.Fatal(err)
		}
		base := k.DeepCopy()
		k.Spec.Owner = "mallory@example.com"
		if err := c.Patch(ctx, k, client.MergeFrom(base)); err == nil || !strings.Contains(err.Error(), "owner is immutable") {
			t.Errorf("%s changing the owner: err = %v, want \"owner is immutable\"", name, err)
		}
	}

	// The owner is a selectable field.
	var mine gatewayv1alpha1.APIKeyList
	if err := env.Client.List(ctx, &mine, client.InNamespace(ns), client.MatchingFields{"spec.owner": "alice@example.com"}); err != nil {
		t.Fatalf("listing by spec.owner: %v", err)
	}
	if len(mine.Items) != 2 {
		t.Errorf("field selector spec.owner=alice@example.com found %d keys, want 2", len(mine.Items))
	}
}
