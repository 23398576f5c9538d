package server_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

func TestLastUsedIsRecordedAndNeverMovesBackwards(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	const interval = time.Second
	var replicas []*gateway
	for range 3 {
		replicas = append(replicas, startGateway(t, server.Options{Providers: providers, LastUsedInterval: interval}))
	}
	ns := env.Namespace(t)
	k, key := env.IssueKey(t, ns, "busy")
	if k.Status.LastUsedAt != nil {
		t.Fatalf("lastUsedAt = %v before any use", k.Status.LastUsedAt)
	}

	firstUse := time.Now()
	if status, _, _ := chat(t, replicas[0].URL, key.Reveal()); status != http.StatusOK {
		t.Fatal(status)
	}
	testenv.Eventually(t, 2*interval+time.Second, func() error {
		if get(t, ns, "busy").Status.LastUsedAt == nil {
			return fmt.Errorf("lastUsedAt not written yet")
		}
		return nil
	})
	t.Logf("lastUsedAt appeared %v after the first use", time.Since(firstUse).Round(time.Millisecond))

	// Use the key on all replicas for a while, sampling the stored value:
	// it must never go backwards.
	var previous time.Time
	deadline := time.Now().Add(5 * interval)
	for i := 0; time.Now().Before(deadline); i++ {
		if status, _, _ := chat(t, replicas[i%len(replicas)].URL, key.Reveal()); status != http.StatusOK {
			t.Fatal(status)
		}
		stored := get(t, ns, "busy").Status.LastUsedAt.Time
		if stored.Before(previous) {
			t.Fatalf("lastUsedAt moved backwards from %v to %v", previous, stored)
		}
		previous = stored
		time.Sleep(50 * time.Millisecond)
	}
	if lag := time.Since(previous); lag > 3*interval {
		t.Errorf("lastUsedAt lags %v behind constant use; want within a few intervals", lag)
	}
}
