package testenv

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// An etcd killed and started again keeps what was written before, and the
// API server serves it again on its own (it reconnects to the same URL).
func TestEtcdRestartKeepsData(t *testing.T) {
	ctx := context.Background()
	env, err := StartWith(ctx, Options{RestartableEtcd: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Errorf("stopping: %v", err)
		}
	})
	before := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "before-restart"}, Data: map[string]string{"k": "v"}}
	if err := env.Client.Create(ctx, before); err != nil {
		t.Fatal(err)
	}
	oldPID, err := pidWithArg("--data-dir=" + env.etcdDir)
	if err != nil {
		t.Fatal(err)
	}

	if err := env.KillEtcd(); err != nil {
		t.Fatal(err)
	}
	// While etcd is down, a write cannot succeed: the restart is real.
	down, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := env.Client.Create(down, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "while-down"}}); err == nil {
		t.Fatal("a write succeeded while etcd was killed")
	}
	if err := env.StartEtcd(); err != nil {
		t.Fatal(err)
	}
	newPID, err := pidWithArg("--data-dir=" + env.etcdDir)
	if err != nil {
		t.Fatal(err)
	}
	if newPID == oldPID {
		t.Fatalf("etcd has the same pid %d after the restart", newPID)
	}
	Eventually(t, 60*time.Second, func() error {
		var got corev1.ConfigMap
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(before), &got); err != nil {
			return err
		}
		if got.Data["k"] != "v" {
			t.Fatalf("after the restart the ConfigMap holds %v, want k=v", got.Data)
		}
		return nil
	})
}
