package mesh

import (
	"context"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func gatewayPod(name, ip string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "codevector-system", Labels: map[string]string{"app": "gateway"}},
		Status: corev1.PodStatus{
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

func peerAddrs(m *Mesh) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.all)
}

func TestWatchPeersFollowsReadyPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(Config{Listen: "127.0.0.1:0", Advertise: "10.0.0.1:7946", Credential: cred, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	other := gatewayPod("gw-2", "10.0.0.2")
	other.Labels = map[string]string{"app": "console"}
	cs := fake.NewClientset(gatewayPod("gw-1", "10.0.0.1"), other)

	if err := WatchPeers(ctx, cs, "codevector-system", "app=gateway", "7946", e, quietLog()); err != nil {
		t.Fatal(err)
	}
	if got := peerAddrs(e); !slices.Equal(got, []string{"10.0.0.1:7946"}) {
		t.Fatalf("peers after the first list = %v", got)
	}

	if _, err := cs.CoreV1().Pods("codevector-system").Create(ctx, gatewayPod("gw-3", "10.0.0.3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want := []string{"10.0.0.1:7946", "10.0.0.3:7946"}
	deadline := time.Now().Add(5 * time.Second)
	for got := peerAddrs(e); !slices.Equal(got, want); got = peerAddrs(e) {
		if time.Now().After(deadline) {
			t.Fatalf("peers = %v, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPodPeers(t *testing.T) {
	pod := func(ip string, ready corev1.ConditionStatus, deleting bool) *corev1.Pod {
		p := &corev1.Pod{Status: corev1.PodStatus{
			PodIP:      ip,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: ready}},
		}}
		if deleting {
			p.DeletionTimestamp = &metav1.Time{Time: time.Now()}
		}
		return p
	}
	got := podPeers([]*corev1.Pod{
		pod("10.0.0.9", corev1.ConditionTrue, false),
		pod("10.0.0.1", corev1.ConditionTrue, false),
		pod("10.0.0.2", corev1.ConditionFalse, false),
		pod("10.0.0.3", corev1.ConditionTrue, true),
		pod("", corev1.ConditionTrue, false),
		pod("fd00::5", corev1.ConditionTrue, false),
	}, "7946")
	want := []string{"10.0.0.1:7946", "10.0.0.9:7946", "[fd00::5]:7946"}
	if !slices.Equal(got, want) {
		t.Fatalf("podPeers = %v, want %v", got, want)
	}
}
