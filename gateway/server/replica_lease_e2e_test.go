package server_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A replica is ready only once its Lease says how far its index has
// applied the APIKey watch, and the Lease is gone when Run returns: a
// revocation never waits for a replica that has stopped.
func TestReplicaLeaseLivesWithTheReplica(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	_, _, stop := testenv.RunGateway(t, 15*time.Second, env.Config, server.Options{Providers: providersFor(t, up, up), ReplicaName: "lease-test"})
	name := types.NamespacedName{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: replicas.LeaseName("lease-test")}
	lease := &coordinationv1.Lease{}
	if err := env.Client.Get(context.Background(), name, lease); err != nil {
		t.Fatalf("a ready replica has no Lease: %v", err)
	}
	var applied map[string]string
	if err := json.Unmarshal([]byte(lease.Annotations[replicas.AnnotationApplied]), &applied); err != nil || applied[replicas.AllNamespaces] == "" ||
		lease.Labels[replicas.LabelReplica] != "true" || lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity != "lease-test" ||
		lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > replicas.LeaseDuration {
		t.Errorf("the replica's Lease: labels %v, annotations %v, spec %+v", lease.Labels, lease.Annotations, lease.Spec)
	}
	stop()
	if err := env.Client.Get(context.Background(), name, &coordinationv1.Lease{}); !apierrors.IsNotFound(err) {
		t.Errorf("the Lease of a stopped replica: err %v, want it deleted by the time Run returned", err)
	}
}
