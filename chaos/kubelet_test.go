package chaos

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// How the replicas find their peers (cluster.discovery); the seed picks.
const (
	discoveryStatic     = "static"
	discoveryKubernetes = "kubernetes"
)

// podSelector is the label of the replicas' Pods, --peer-selector.
const podSelector = "app.kubernetes.io/name=chaos-gateway"

// The harness is the replicas' kubelet: envtest runs no kubelet, so with
// kubernetes discovery it creates a Pod per replica in the system
// namespace and keeps its Ready condition as a kubelet would: false at
// once when the process is gone (the kubelet sees a container exit),
// false after probeFailures failed /readyz probes a probePeriod apart (a
// stopped replica), true at the first probe that passes. Status writes
// that fail (the API server down) are tried again at the next probe, as a
// kubelet's are.
const (
	probePeriod   = time.Second
	probeTimeout  = time.Second
	probeFailures = 3
)

// startKubelet creates the replicas' Pods, not ready, and keeps their
// readiness until the test ends.
func (c *cluster) startKubelet() {
	ctx := context.Background()
	for _, r := range c.replicas {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: r.name,
				Labels: map[string]string{"app.kubernetes.io/name": "chaos-gateway"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "gateway", Image: "codevector"}}},
		}
		if err := c.kube().Create(ctx, pod); err != nil {
			c.t.Fatalf("creating the Pod of %s: %v", r.name, err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, r := range c.replicas {
		wg.Go(func() { c.kubeletFor(r, stop) })
	}
	c.t.Cleanup(func() {
		close(stop)
		wg.Wait()
	})
}

// kubeletFor probes r every probePeriod and writes its Pod's readiness
// when it changes.
func (c *cluster) kubeletFor(r *replica, stop <-chan struct{}) {
	probe := &http.Client{Timeout: probeTimeout}
	tick := time.NewTicker(probePeriod)
	defer tick.Stop()
	reported, written, failures := false, false, 0
	var outSince time.Time // when the Pod was marked not ready, after it had been ready
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		ready := false
		if r.proc.running() {
			if resp, err := probe.Get(r.url + "/readyz"); err == nil {
				resp.Body.Close()
				ready = resp.StatusCode == http.StatusOK
			}
			if ready {
				failures = 0
			} else {
				failures++
			}
		}
		want := reported
		switch {
		case ready:
			want = true
		case !r.proc.running() || failures >= probeFailures:
			want = false
		}
		if written && want == reported {
			continue
		}
		before := time.Now()
		if err := c.setPodReady(r, want); err != nil {
			continue
		}
		// Out of the lists from before the write (its watch event may
		// reach the peers before its answer reaches the kubelet) until
		// after the write that puts it back.
		switch now := time.Now(); {
		case !want && written:
			outSince = before
		case !outSince.IsZero():
			c.record(Record{Type: TypeOutOfPeers, Target: r.name, Start: outSince, End: now})
			outSince = time.Time{}
		}
		reported, written = want, true
	}
}

// setPodReady writes r's Pod status: its IP and its Ready condition.
func (c *cluster) setPodReady(r *replica, ready bool) error {
	cond := corev1.ConditionFalse
	if ready {
		cond = corev1.ConditionTrue
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{
		"podIP":  r.ip,
		"podIPs": []map[string]string{{"ip": r.ip}},
		"phase":  corev1.PodRunning,
		"conditions": []map[string]any{{"type": corev1.PodReady, "status": cond,
			"lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}},
	}})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: r.name}}
	if err := c.kube().Status().Patch(ctx, pod, client.RawPatch(types.MergePatchType, patch)); err != nil {
		return fmt.Errorf("writing the readiness of %s's Pod: %w", r.name, err)
	}
	return nil
}
