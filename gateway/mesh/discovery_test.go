package quota

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

func peerAddrs(e *Engine) []string {
	var addrs []string
	for _, p := range e.instance.GetPeerList() {
		addrs = append(addrs, p.Info().GRPCAddress)
	}
	slices.Sort(addrs)
	return addrs
}

func TestWatchPeersFollowsReadyPods(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	e := newSingle(t, Config{PeerListen: "127.0.0.1:0", Advertise: "10.0.0.1:7946", Credential: cred})
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
