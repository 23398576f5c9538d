package config_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

const systemNS = gatewayv1alpha1.DefaultSystemNamespace

// identity is a component's service account as the API server sees it:
// tests authenticate as it with a client certificate, so only the
// bindings of config/rbac grant it anything.
type identity struct {
	user   string
	groups []string
	cfg    *rest.Config
	client client.Client
}

// asServiceAccount applies config/rbac (as kustomize builds it) and returns
// the identity of the service account name in the system namespace.
func asServiceAccount(t *testing.T, name string) *identity {
	t.Helper()
	out, _ := kustomize(t, "rbac")
	return asServiceAccountBoundBy(t, name, out, "config/rbac")
}

// asServiceAccountBoundBy applies rbac (the RBAC objects of an install:
// kustomize's or the Helm chart's) and returns the identity of the service
// account name in the system namespace.
func asServiceAccountBoundBy(t *testing.T, name string, rbac []byte, source string) *identity {
	t.Helper()
	if err := devmode.ApplyYAML(context.Background(), env.Client, rbac, source); err != nil {
		t.Fatal(err)
	}
	id := &identity{}
	id.user, id.groups = devmode.ServiceAccountUser(systemNS, name)
	u, err := env.AddUser(envtest.User{Name: id.user, Groups: id.groups}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id.cfg = u.Config()
	if id.client, err = client.New(id.cfg, client.Options{Scheme: manager.Scheme()}); err != nil {
		t.Fatal(err)
	}
	return id
}

// startManagerAs runs the real manager, with leader election as deployed,
// under id until the test ends.
func startManagerAs(t *testing.T, id *identity) {
	t.Helper()
	testenv.RunManager(t, id.cfg, manager.Options{LeaderElection: true})
}

// access is one question for a SubjectAccessReview.
type access struct {
	verb, group, resource, subresource, namespace string
	want                                          bool
}

func (a access) String() string {
	r := a.resource
	if a.group != "" {
		r += "." + a.group
	}
	if a.subresource != "" {
		r += "/" + a.subresource
	}
	where := "cluster-wide"
	if a.namespace != "" {
		where = "in " + a.namespace
	}
	return fmt.Sprintf("%s %s %s", a.verb, r, where)
}

// checkAccess asks the API server's authorizer each question for id.
func checkAccess(t *testing.T, id *identity, table []access) {
	t.Helper()
	for _, a := range table {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User: id.user, Groups: id.groups,
			ResourceAttributes: &authorizationv1.ResourceAttributes{
				Namespace: a.namespace, Verb: a.verb, Group: a.group, Resource: a.resource, Subresource: a.subresource,
			},
		}}
		if err := env.Client.Create(context.Background(), sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != a.want {
			t.Errorf("%s may %s: %v, want %v", id.user, a, sar.Status.Allowed, a.want)
		}
	}
}

// TestGatewayRBACIsEnoughAndNoMore runs a real gateway as
// system:serviceaccount:codevector-system:codevector-gateway, bound only by
// config/rbac: it authenticates keys of any namespace, records last use,
// creates and reveals console keys, and revokes and deletes keys anywhere
// (the console's revoke and delete of its users' kubectl-made keys, whose
// ownership it checks by the admission policy's rule), yet cannot create a
// key outside the system namespace nor read any Secret there.
func TestGatewayRBACIsEnoughAndNoMore(t *testing.T) {
	ctx := context.Background()
	tenant := env.Namespace(t)
	startManagerAs(t, asServiceAccount(t, "codevector-manager"))
	gw := asServiceAccount(t, "codevector-gateway")

	// Authenticates a tenant's key and records its last use.
	base, key := servesATenantKey(t, gw, tenant)

	// Cannot read a Secret in a tenant namespace, by name or by listing.
	tenantSecret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "database-password"}, StringData: map[string]string{"password": "hunter2"}}
	if err := env.Client.Create(ctx, tenantSecret); err != nil {
		t.Fatal(err)
	}
	if err := gw.client.Get(ctx, client.ObjectKeyFromObject(tenantSecret), &corev1.Secret{}); !apierrors.IsForbidden(err) {
		t.Errorf("gateway reading a tenant Secret: err = %v, want 403 Forbidden", err)
	}
	if err := gw.client.List(ctx, &corev1.SecretList{}, client.InNamespace(tenant)); !apierrors.IsForbidden(err) {
		t.Errorf("gateway listing a tenant's Secrets: err = %v, want 403 Forbidden", err)
	}
	if err := gw.client.List(ctx, &corev1.SecretList{}); !apierrors.IsForbidden(err) {
		t.Errorf("gateway listing Secrets cluster-wide: err = %v, want 403 Forbidden", err)
	}
	// Cannot create a tenant's keys; may revoke them (the console does,
	// for their owners; a dry run here, the key serves on).
	if err := gw.client.Create(ctx, &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "planted"}}); !apierrors.IsForbidden(err) {
		t.Errorf("gateway creating a key in a tenant namespace: err = %v, want 403 Forbidden", err)
	}
	revoke := client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))
	if err := gw.client.Patch(ctx, key.DeepCopy(), revoke, client.DryRunAll); err != nil {
		t.Errorf("gateway revoking a tenant's key (dry run): %v", err)
	}

	// The console's job: create a key for a user in the system namespace,
	// reveal it once, and it authenticates.
	issued := servesAConsoleKey(t, gw, base, "console-made")
	if err := gw.client.Patch(ctx, issued.DeepCopy(), revoke); err != nil {
		t.Errorf("gateway revoking a console key: %v", err)
	}

	// It keeps its Lease (gateway/replicas): it reported ready, so it
	// wrote one, and revocations wait on it.
	leases := &coordinationv1.LeaseList{}
	if err := env.Client.List(ctx, leases, client.InNamespace(systemNS), client.MatchingLabels{replicas.LabelReplica: "true"}); err != nil || len(leases.Items) == 0 {
		t.Errorf("no gateway replica Lease in %s (err %v)", systemNS, err)
	}

	checkAccess(t, gw, []access{
		{"list", "gateway.codevector.io", "apikeys", "", "", true},
		{"watch", "gateway.codevector.io", "apikeys", "", "", true},
		{"get", "gateway.codevector.io", "apikeys", "", tenant, true},
		{"patch", "gateway.codevector.io", "apikeys", "status", tenant, true},
		{"create", "gateway.codevector.io", "apikeys", "", systemNS, true},
		{"patch", "gateway.codevector.io", "apikeys", "", systemNS, true},
		{"patch", "gateway.codevector.io", "apikeys", "", tenant, true},
		{"delete", "gateway.codevector.io", "apikeys", "", tenant, true},
		{"delete", "gateway.codevector.io", "apikeys", "", systemNS, true},
		{"list", "", "secrets", "", systemNS, true},
		{"watch", "", "secrets", "", systemNS, true},
		{"get", "", "secrets", "", systemNS, true},
		{"delete", "", "secrets", "", systemNS, true},
		{"create", "coordination.k8s.io", "leases", "", systemNS, true},
		{"update", "coordination.k8s.io", "leases", "", systemNS, true},
		{"delete", "coordination.k8s.io", "leases", "", systemNS, true},
		{"get", "coordination.k8s.io", "leases", "", systemNS, true},
		{"list", "coordination.k8s.io", "leases", "", systemNS, true},
		{"watch", "coordination.k8s.io", "leases", "", systemNS, true},

		{"patch", "coordination.k8s.io", "leases", "", systemNS, false},
		{"create", "coordination.k8s.io", "leases", "", tenant, false},
		{"list", "coordination.k8s.io", "leases", "", "", false},
		{"update", "gateway.codevector.io", "apikeys", "status", tenant, false},
		{"create", "gateway.codevector.io", "apikeys", "", tenant, false},
		{"update", "gateway.codevector.io", "apikeys", "", tenant, false},
		{"get", "", "secrets", "", tenant, false},
		{"list", "", "secrets", "", "", false},
		{"watch", "", "secrets", "", "", false},
		{"create", "", "secrets", "", systemNS, false},
		{"update", "", "secrets", "", systemNS, false},
		{"get", "", "configmaps", "", systemNS, false},
		{"create", "", "pods", "", systemNS, false},
		{"impersonate", "", "users", "", "", false},
		{"create", "", "serviceaccounts", "token", systemNS, false},
		{"create", "rbac.authorization.k8s.io", "rolebindings", "", systemNS, false},
	})
}

// Anyone signed in may read the gateway replicas' Leases, which
// `kubectl apikey revoke` waits on, and nothing more of Leases.
func TestKeyUsersReadGatewayReplicaLeasesOnly(t *testing.T) {
	asServiceAccount(t, "codevector-gateway") // applies config/rbac
	user := &identity{user: "someone@example.com", groups: []string{"system:authenticated"}}
	tenant := env.Namespace(t)
	checkAccess(t, user, []access{
		{"get", "coordination.k8s.io", "leases", "", systemNS, true},
		{"list", "coordination.k8s.io", "leases", "", systemNS, true},
		{"watch", "coordination.k8s.io", "leases", "", systemNS, true},

		{"create", "coordination.k8s.io", "leases", "", systemNS, false},
		{"update", "coordination.k8s.io", "leases", "", systemNS, false},
		{"patch", "coordination.k8s.io", "leases", "", systemNS, false},
		{"delete", "coordination.k8s.io", "leases", "", systemNS, false},
		{"list", "coordination.k8s.io", "leases", "", tenant, false},
		{"list", "coordination.k8s.io", "leases", "", "", false},
		{"get", "", "secrets", "", systemNS, false},
	})
}

// TestManagerRBACIsEnoughAndNoMore runs the real manager, with leader
// election, as system:serviceaccount:codevector-system:codevector-manager
// bound only by config/rbac, through a key's whole life.
func TestManagerRBACIsEnoughAndNoMore(t *testing.T) {
	ctx := context.Background()
	tenant := env.Namespace(t)
	mgr := asServiceAccount(t, "codevector-manager")
	logStart := logLen()
	startManagerAs(t, mgr)

	// Issue: it creates the reveal Secret in the tenant namespace and the
	// hash Secret in the system namespace.
	key := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "laptop"}}
	testenv.SealToTests(key)
	if err := env.Client.Create(ctx, key); err != nil {
		t.Fatal(err)
	}
	key = env.WaitForPhase(t, tenant, key.Name, gatewayv1alpha1.PhaseActive, 30*time.Second)
	revealName := types.NamespacedName{Namespace: tenant, Name: gatewayv1alpha1.RevealSecretName(key.Name)}
	if err := env.Client.Get(ctx, revealName, &corev1.Secret{}); err != nil {
		t.Fatalf("reveal Secret: %v", err)
	}
	hashName := types.NamespacedName{Namespace: systemNS, Name: gatewayv1alpha1.HashSecretName(string(key.UID))}
	if err := env.Client.Get(ctx, hashName, &corev1.Secret{}); err != nil {
		t.Fatalf("hash Secret: %v", err)
	}

	// Revoke: it deletes both Secrets.
	if err := env.Client.Patch(ctx, key, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))); err != nil {
		t.Fatal(err)
	}
	env.WaitForPhase(t, tenant, key.Name, gatewayv1alpha1.PhaseRevoked, 15*time.Second)
	for _, n := range []types.NamespacedName{revealName, hashName} {
		testenv.Eventually(t, 10*time.Second, func() error {
			if err := env.Client.Get(ctx, n, &corev1.Secret{}); !apierrors.IsNotFound(err) {
				return fmt.Errorf("secret %s still there (err %v)", n, err)
			}
			return nil
		})
	}

	// Delete: its finalizer removes the hash Secret, then lets go (the
	// ownership policy lets the manager's service account do that).
	doomed := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: tenant, Name: "doomed"}}
	testenv.SealToTests(doomed)
	if err := env.Client.Create(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	doomed = env.WaitForPhase(t, tenant, doomed.Name, gatewayv1alpha1.PhaseActive, 15*time.Second)
	if err := env.Client.Delete(ctx, doomed); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(doomed), &gatewayv1alpha1.APIKey{}); !apierrors.IsNotFound(err) {
			return fmt.Errorf("APIKey still there (err %v)", err)
		}
		return nil
	})

	// Leader election works with the Role in the system namespace.
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: systemNS, Name: "codevector-manager.gateway.codevector.io"}, lease); err != nil {
		t.Fatalf("leader election lease: %v", err)
	}
	holder := ""
	if h := lease.Spec.HolderIdentity; h != nil {
		holder = *h
	}
	if holder == "" {
		t.Fatal("nobody holds the leader election lease")
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		events := &corev1.EventList{}
		if err := env.Client.List(ctx, events, client.InNamespace(systemNS)); err != nil {
			return err
		}
		for _, e := range events.Items {
			if e.Reason == "LeaderElection" && e.InvolvedObject.Kind == "Lease" && strings.Contains(e.Message, holder) {
				return nil
			}
		}
		return fmt.Errorf("no LeaderElection event for %s recorded in %s", holder, systemNS)
	})
	if l := logsSince(logStart); strings.Contains(strings.ToLower(l), "forbidden") {
		t.Errorf("the manager hit a permission it lacks:\n%s", l)
	}

	checkAccess(t, mgr, []access{
		// Reveal Secrets live next to the keys, hash Secrets in the system
		// namespace; the cache of its own (labelled) Secrets needs
		// cluster-wide list/watch, which RBAC cannot narrow by label.
		{"create", "", "secrets", "", tenant, true},
		{"delete", "", "secrets", "", tenant, true},
		{"get", "", "secrets", "", tenant, true},
		{"list", "", "secrets", "", "", true},
		{"watch", "", "secrets", "", "", true},
		{"patch", "gateway.codevector.io", "apikeys", "status", tenant, true},
		{"update", "gateway.codevector.io", "apikeys", "finalizers", tenant, true},
		{"create", "events.k8s.io", "events", "", tenant, true},
		{"get", "coordination.k8s.io", "leases", "", systemNS, true},
		{"update", "coordination.k8s.io", "leases", "", systemNS, true},

		{"update", "", "secrets", "", tenant, false},
		{"patch", "", "secrets", "", tenant, false},
		{"create", "gateway.codevector.io", "apikeys", "", tenant, false},
		{"delete", "gateway.codevector.io", "apikeys", "", tenant, false},
		{"create", "coordination.k8s.io", "leases", "", tenant, false},
		{"get", "", "configmaps", "", tenant, false},
		{"create", "", "pods", "", tenant, false},
		{"delete", "", "namespaces", "", "", false},
		{"impersonate", "", "users", "", "", false},
		{"create", "", "serviceaccounts", "token", systemNS, false},
		{"create", "rbac.authorization.k8s.io", "clusterrolebindings", "", "", false},
		{"update", "admissionregistration.k8s.io", "validatingadmissionpolicies", "", "", false},
	})
}

// chat sends the docs' request.
func chat(t *testing.T, base, key string) (int, string) {
	t.Helper()
	return testenv.DocsChat(t, base, key)
}

func logLen() int {
	logWriter.mu.Lock()
	defer logWriter.mu.Unlock()
	return logs.Len()
}

func logsSince(n int) string {
	logWriter.mu.Lock()
	defer logWriter.mu.Unlock()
	return logs.String()[n:]
}

// servesATenantKey runs a gateway as gw in front of the echo upstream,
// issues a key in tenant, and checks that the gateway serves it and
// records its last use (which needs its status patch right). It returns
// the gateway's URL and the key's APIKey.
func servesATenantKey(t *testing.T, gw *identity, tenant string) (string, *gatewayv1alpha1.APIKey) {
	t.Helper()
	upstream := httptest.NewServer(&devmode.EchoUpstream{})
	t.Cleanup(upstream.Close)
	ps, err := providers.ParseProviders([]byte("providers:\n  openai:\n    baseURL: "+upstream.URL+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	base, _ := testenv.StartGateway(t, gw.cfg, server.Options{
		Providers: ps, LastUsedInterval: 200 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	key, plain := env.IssueKey(t, tenant, "laptop")
	if code, body := chat(t, base, plain.Reveal()); code != http.StatusOK || !strings.Contains(body, "Echo: Hello") {
		t.Fatalf("gateway answered %d %s, want 200 from the echo upstream", code, body)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		k := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), client.ObjectKeyFromObject(key), k); err != nil {
			return err
		}
		if k.Status.LastUsedAt == nil {
			return fmt.Errorf("status.lastUsedAt not recorded")
		}
		return nil
	})
	return base, key
}

// servesAConsoleKey does as gw what the console does: it creates a key
// named name for alice in the system namespace, consumes its reveal, and
// checks that the gateway at base serves it. It returns the issued APIKey.
func servesAConsoleKey(t *testing.T, gw *identity, base, name string) *gatewayv1alpha1.APIKey {
	t.Helper()
	ctx := context.Background()
	consoleKey := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: systemNS, Name: name}, Spec: gatewayv1alpha1.APIKeySpec{Owner: "alice@example.com"}}
	testenv.SealToTests(consoleKey)
	if err := gw.client.Create(ctx, consoleKey); err != nil {
		t.Fatalf("gateway creating a console key for alice: %v", err)
	}
	issued := env.WaitForPhase(t, systemNS, consoleKey.Name, gatewayv1alpha1.PhaseActive, 15*time.Second)
	consolePlain, err := testenv.Reveal(ctx, gw.client, issued)
	if err != nil {
		t.Fatalf("gateway consuming the reveal Secret of a console key: %v", err)
	}
	if code, body := chat(t, base, consolePlain.Reveal()); code != http.StatusOK {
		t.Errorf("console key: gateway answered %d %s, want 200", code, body)
	}
	return issued
}
