package config_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// apikeyCount is the object-count quota resource of APIKeys.
const apikeyCount corev1.ResourceName = "count/apikeys.gateway.codevector.io"

// TestQuotaExampleCapsAPIKeys applies config/quota's ResourceQuota the way
// the README says (server-side, into a namespace) and shows the API server
// refuse the APIKey past it, from a Go client and from kubectl alike.
func TestQuotaExampleCapsAPIKeys(t *testing.T) {
	ctx := context.Background()
	kubeconfig := adminKubeconfig(t)

	// The kustomization puts it in team-a, like config/samples; config/default
	// does not carry it.
	_, objs := kustomize(t, "quota")
	if len(objs) != 1 || objs[0].GetKind() != "ResourceQuota" || objs[0].GetNamespace() != "team-a" {
		t.Fatalf("kubectl kustomize config/quota: want one ResourceQuota in team-a, got %d objects", len(objs))
	}
	_, defaults := kustomize(t, "default")
	for _, o := range defaults {
		if o.GetKind() == "ResourceQuota" {
			t.Errorf("config/default carries ResourceQuota %s: quotas are each cluster's choice", o.GetName())
		}
	}

	ns := env.Namespace(t)
	out, err := exec.Command(kubectl, "apply", "--server-side", "-n", ns, "-f", "quota/apikey_quota.yaml", "--kubeconfig", kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl apply --server-side -n %s -f config/quota/apikey_quota.yaml: %v\n%s", ns, err, out)
	}
	q := &corev1.ResourceQuota{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "codevector-apikeys"}, q); err != nil {
		t.Fatal(err)
	}
	limit, ok := q.Spec.Hard[apikeyCount]
	if !ok || limit.Value() != 50 {
		t.Fatalf("the example quota's hard limits are %v, want %s: 50", q.Spec.Hard, apikeyCount)
	}
	// kube-controller-manager's quota controller would fill in the status;
	// the test control plane has none, and quota admission refuses every
	// create while a quota's status is unknown. From here on the API
	// server's quota admission counts each admitted create itself.
	q.Status = corev1.ResourceQuotaStatus{Hard: q.Spec.Hard, Used: corev1.ResourceList{apikeyCount: resource.MustParse("0")}}
	if err := env.Client.Status().Update(ctx, q); err != nil {
		t.Fatalf("setting the quota's status as its controller would: %v", err)
	}

	// Quota admission reads quotas from its informer: until that has seen
	// the status set above, it admits creates without counting them (and a
	// loaded machine can make that take a while). Wait until a create is
	// counted; one that was not is deleted and tried again.
	attempt := 0
	testenv.Eventually(t, 20*time.Second, func() error {
		attempt++
		first := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-00-%d", attempt)}}
		if err := env.Client.Create(ctx, first); err != nil {
			return fmt.Errorf("creating the first APIKey: %w", err)
		}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "codevector-apikeys"}, q); err != nil {
			return err
		}
		if used := q.Status.Used[apikeyCount]; used.Value() == 1 {
			return nil
		}
		if err := env.Client.Delete(ctx, first); err != nil {
			t.Fatalf("deleting an APIKey created before quota admission counted: %v", err)
		}
		return errors.New("quota admission has not seen the quota's status yet; it admitted an APIKey uncounted")
	})
	for i := 1; i < int(limit.Value()); i++ {
		k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("key-%02d", i)}}
		if err := env.Client.Create(ctx, k); err != nil {
			t.Fatalf("APIKey %d of %d was refused: %v", i+1, limit.Value(), err)
		}
	}
	over := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "one-too-many"}}
	err = env.Client.Create(ctx, over)
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "exceeded quota: codevector-apikeys") {
		t.Errorf("APIKey 51 from a Go client: %v, want 403 exceeded quota: codevector-apikeys", err)
	}
	apply := exec.Command(kubectl, "apply", "-n", ns, "-f", "-", "--kubeconfig", kubeconfig)
	apply.Stdin = strings.NewReader("apiVersion: gateway.codevector.io/v1alpha1\nkind: APIKey\nmetadata: {name: from-kubectl}\n")
	out, err = apply.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "exceeded quota: codevector-apikeys") {
		t.Errorf("APIKey 51 from kubectl apply: %v\n%s\nwant a refusal: exceeded quota: codevector-apikeys", err, out)
	}
	var list gatewayv1alpha1.APIKeyList
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != int(limit.Value()) {
		t.Errorf("%d APIKeys in the namespace, want %d", len(list.Items), limit.Value())
	}
}
