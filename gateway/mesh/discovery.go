package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
)

// WatchPeers keeps m's peer list equal to the ready pods in namespace that
// match selector (the gateway's own pods), each at its pod IP and port. It
// returns once the first list is applied, and keeps watching until ctx ends.
// RBAC: list and watch Pods in namespace.
//
// Pods rather than EndpointSlices: the selector then names the gateway pods
// directly, with no Service required, and a pod counts as a peer exactly
// while it is Ready.
func WatchPeers(ctx context.Context, cs kubernetes.Interface, namespace, selector, port string, m *Mesh, log *slog.Logger) error {
	sel, err := labels.Parse(selector)
	if err != nil {
		return fmt.Errorf("parsing peer selector %q: %w", selector, err)
	}
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 10*time.Minute,
		informers.WithNamespace(namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel.String() }))
	pods := factory.Core().V1().Pods()
	lister := pods.Lister()

	var current []string
	update := func() {
		list, err := lister.List(labels.Everything())
		if err != nil {
			log.Error("Failed to list peer pods", "error", err)
			return
		}
		addrs := podPeers(list, port)
		if slices.Equal(addrs, current) {
			return
		}
		current = addrs
		m.SetPeers(addrs)
		log.Info("Updated peers", "peers", addrs)
	}
	changes := make(chan struct{}, 1)
	notify := func() {
		select {
		case changes <- struct{}{}:
		default:
		}
	}
	if _, err := pods.Informer().AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { notify() },
		UpdateFunc: func(any, any) { notify() },
		DeleteFunc: func(any) { notify() },
	}); err != nil {
		return fmt.Errorf("watching peer pods: %w", err)
	}
	factory.Start(ctx.Done())
	if !toolscache.WaitForCacheSync(ctx.Done(), pods.Informer().HasSynced) {
		return fmt.Errorf("listing peer pods in %s: %w", namespace, ctx.Err())
	}
	update()
	// One goroutine applies changes, so SetPeers calls never overlap and a
	// burst of pod events becomes one update.
	go func() {
		for {
			select {
			case <-ctx.Done():
				factory.Shutdown()
				return
			case <-changes:
				update()
			}
		}
	}()
	return nil
}

// podPeers returns the sorted peer addresses of the ready, not terminating
// pods that have an IP.
func podPeers(pods []*corev1.Pod, port string) []string {
	var addrs []string
	for _, p := range pods {
		if p.DeletionTimestamp != nil || p.Status.PodIP == "" || !podReady(p) {
			continue
		}
		addrs = append(addrs, net.JoinHostPort(p.Status.PodIP, port))
	}
	slices.Sort(addrs)
	return slices.Compact(addrs)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
