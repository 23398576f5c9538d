package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
)

// A user may hold --max-keys-per-user active keys, counted in every
// namespace the gateway watches; the next create is refused in words that
// say what to do, and revoking a key makes room at once. Other users are
// not affected.
func TestAPIKeyQuotaPerUser(t *testing.T) {
	team := env.Namespace(t)
	s := startStack(t, true, func(o *server.Options) {
		o.Console.MaxKeysPerUser = 3
		o.Namespaces = append(o.Namespaces, team)
	})
	alice, bob := s.as("alice@example.com"), s.as("bob@example.com")

	first, _ := alice.create(t, map[string]any{"displayName": "one"})
	alice.create(t, map[string]any{"displayName": "two"})
	// A key alice made with kubectl in a team namespace counts too: the
	// limit is per owner, not per namespace.
	kubectlKey(t, team, "from-kubectl", alice.email, "")
	waitForListed(t, alice, 3)

	r := alice.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"displayName": "four"})
	want := "You have 3 active keys, the most this gateway allows per user. Revoke a key you no longer use, then try again. Keys made with kubectl count too: the list shows them with their namespace."
	if r.Status != http.StatusForbidden || r.errorCode() != "key_quota_exceeded" || r.errorMessage() != want {
		t.Fatalf("the fourth key: %d %s %q\nwant 403 key_quota_exceeded %q", r.Status, r.errorCode(), r.errorMessage(), want)
	}
	if l, _ := alice.list(t, ""); len(l.Items) != 3 {
		t.Errorf("the refused create left %d keys, want 3: %v", len(l.Items), names(l.Items))
	}

	// bob has his own allowance.
	bob.create(t, map[string]any{"displayName": "bob's"})

	// A revoked key no longer counts.
	if rr := alice.revoke(t, first.APIKey.Name); rr.Status != http.StatusOK {
		t.Fatalf("revoking: %d %s", rr.Status, rr.Body)
	}
	alice.create(t, map[string]any{"displayName": "four"})
	r = alice.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"displayName": "five"})
	if r.Status != http.StatusForbidden || r.errorCode() != "key_quota_exceeded" {
		t.Errorf("the fifth key, with three active again: %d %s %q", r.Status, r.errorCode(), r.errorMessage())
	}
}

// waitForListed waits until u's list shows n keys: a kubectl key reaches
// the gateway's index through its watch.
func waitForListed(t *testing.T, u *user, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _ := u.list(t, "")
		if len(l.Items) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's list shows %v, want %d keys", u.email, names(l.Items), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A ResourceQuota on the console's namespace is the administrator's cap
// on every console key together; when it is used up the console says so,
// rather than blaming the gateway's permissions.
func TestAPINamespaceQuotaIsExplained(t *testing.T) {
	s := startStack(t, true, nil)
	limitAPIKeys(t, s.Namespace, 1)
	alice := s.as("alice@example.com")
	alice.create(t, map[string]any{"displayName": "the only one"})
	r := alice.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"displayName": "one too many"})
	if r.Status != http.StatusForbidden || r.errorCode() != "namespace_quota_exceeded" ||
		!strings.Contains(r.errorMessage(), "exceeded quota: apikeys") || !strings.Contains(r.errorMessage(), "Ask your administrator") {
		t.Errorf("a create past the namespace's ResourceQuota: %d %s %q", r.Status, r.errorCode(), r.errorMessage())
	}
}

// limitAPIKeys puts a ResourceQuota of n APIKeys on namespace and gives it
// the status that kube-controller-manager's quota controller would (the
// test control plane runs none, and quota admission refuses every create
// while a quota's status is unknown).
func limitAPIKeys(t *testing.T, namespace string, n int64) {
	t.Helper()
	ctx := context.Background()
	const resourceName corev1.ResourceName = "count/apikeys.gateway.codevector.io"
	q := &corev1.ResourceQuota{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "apikeys"},
		Spec:       corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{resourceName: *resource.NewQuantity(n, resource.DecimalSI)}},
	}
	if err := env.Client.Create(ctx, q); err != nil {
		t.Fatal(err)
	}
	q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{resourceName: resource.MustParse("0")}}
	if err := env.Client.Status().Update(ctx, q); err != nil {
		t.Fatalf("setting the ResourceQuota's status: %v", err)
	}
}

// Twelve creates of one user at the same moment, with a limit of 2, make
// exactly 2 keys: each create counts the keys of the creates before it
// (issue 24: all twelve passed a count none of them was in yet).
func TestAPIKeyQuotaHoldsUnderConcurrentCreates(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) { o.Console.MaxKeysPerUser = 2 })
	// Two more replicas with the same console namespace, as behind one
	// load balancer: the creates land on all three, more replicas than
	// the limit, so a count per replica would let each one's first
	// create through.
	alice := []*user{s.as("alice@example.com")}
	for range 2 {
		other := startStack(t, false, func(o *server.Options) {
			o.Console.MaxKeysPerUser = 2
			o.Console.Namespace, o.Namespaces = s.Namespace, []string{s.Namespace}
		})
		alice = append(alice, other.as("alice@example.com"))
	}
	for _, a := range alice {
		a.page(t, "") // the CSRF token, before the burst
	}

	const creates = 12
	statuses := make([]int, creates)
	var wg sync.WaitGroup
	for i := range creates {
		wg.Go(func() {
			who := alice[i%len(alice)]
			r := who.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"displayName": fmt.Sprintf("burst %d", i)})
			statuses[i] = r.Status
			if r.Status != http.StatusCreated && (r.Status != http.StatusForbidden || r.errorCode() != "key_quota_exceeded") {
				t.Errorf("create %d: %d %s", i, r.Status, r.Body)
			}
		})
	}
	wg.Wait()
	created := 0
	for _, st := range statuses {
		if st == http.StatusCreated {
			created++
		}
	}
	var stored gatewayv1alpha1.APIKeyList
	if err := env.Client.List(context.Background(), &stored, client.InNamespace(s.Namespace)); err != nil {
		t.Fatal(err)
	}
	owned := 0
	for _, k := range stored.Items {
		if k.Spec.Owner == alice[0].email && !k.Spec.Revoked {
			owned++
		}
	}
	if created != 2 || owned != 2 {
		t.Fatalf("%d concurrent creates with --max-keys-per-user=2 answered %v: %d created, %d unrevoked keys stored; want exactly 2", creates, statuses, created, owned)
	}
}
