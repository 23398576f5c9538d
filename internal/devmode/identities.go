package devmode

import (
	"context"
	"fmt"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/codevector/codevector/gateway/console"
)

// The dev user is the person at the keyboard: the user of DIR/kubeconfig,
// and the user the console signs everyone in as in dev mode, so keys made
// either way have the same owner. It is an ordinary user (not an admin, not
// system:masters), so its requests meet the admission policies and RBAC
// like anyone's.
//
// Its name has one home, console.DevUser: the console's dev sign-in
// (AuthDev) and the gateway's loopback guard use it at run time, and the
// gateway must not link this package (it links the manager). Dev mode wires
// the console anyway, so it takes the name from there.

// DevNamespace is the default namespace of DIR/kubeconfig, where the dev
// user may create, reveal and revoke keys.
const DevNamespace = "default"

// ServiceAccountUser is the username and groups the API server gives the
// service account ns/name. Dev mode and the RBAC tests run the manager and
// the gateway as these users (with client certificates), so the bindings
// of config/rbac, whose subjects are service accounts, apply to them
// exactly as in a cluster.
func ServiceAccountUser(ns, name string) (string, []string) {
	return "system:serviceaccount:" + ns + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
}

// GrantDevUser binds console.DevUser like a team member of DevNamespace: the
// APIKey editor and revealer roles there (create, reveal, revoke), and
// the viewer role cluster-wide (`kubectl get apikeys -A`).
func GrantDevUser(ctx context.Context, c client.Client) error {
	subject := []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: console.DevUser}}
	ref := func(role string) rbacv1.RoleRef {
		return rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role}
	}
	objs := []client.Object{
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: DevNamespace, Name: "codevector-dev-apikey-editor"},
			RoleRef:    ref("codevector-apikey-editor"), Subjects: subject,
		},
		&rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: DevNamespace, Name: "codevector-dev-apikey-revealer"},
			RoleRef:    ref("codevector-apikey-revealer"), Subjects: subject,
		},
		&rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: "codevector-dev-apikey-viewer"},
			RoleRef:    ref("codevector-apikey-viewer"), Subjects: subject,
		},
	}
	for _, o := range objs {
		if err := c.Create(ctx, o); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("binding %s: %w", console.DevUser, err)
		}
	}
	return nil
}
