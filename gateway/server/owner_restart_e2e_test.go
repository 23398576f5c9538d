package server_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A total token budget, spent through one replica, whose counter's owner
// (static peers) restarts: the new process restores the count from
// status.usage, and the key stays refused.
func TestBudgetHoldsWhenItsCounterOwnerRestarts(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	opts := server.Options{Providers: providersFor(t, up, up)}
	const budget = 300
	k, key := env.IssueKey(t, env.Namespace(t), "owner-restarts", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{Tokens: ptr.To[int64](budget), Period: gatewayv1alpha1.BudgetTotal}
	})
	listeners, peers := peerListeners(t, 2)
	owner := 0
	if counterOwner(t, peers, fmt.Sprintf("%s/%s/%s/budget", k.Namespace, k.Name, k.UID), time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)) != peers[0] {
		owner = 1
	}
	front := 1 - owner
	gws := make([]*gateway, 2)
	stops := make([]func(), 2)
	for i := range gws {
		gws[i], stops[i] = startReplica(t, listeners[i], peers, opts)
	}
	waitForPolicy(t, gws, k)

	spend := func() (ok int, status int, body string) {
		for range 200 {
			status, _, body = postChat(t, gws[front].URL, key.Reveal(), "gpt-4o-mini")
			if status != http.StatusOK {
				return ok, status, body
			}
			ok++
		}
		return ok, status, body
	}
	ok, status, body := spend()
	if status != http.StatusTooManyRequests || errorCode(t, body) != "budget_exceeded" {
		t.Fatalf("after %d requests: %d %s, want 429 budget_exceeded", ok, status, body)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			return err
		}
		if u := live.Status.Usage; u == nil || u.Requests != int64(ok) {
			return fmt.Errorf("status.usage = %+v, want %d requests", u, ok)
		}
		return nil
	})

	stops[owner]()
	ln, err := net.Listen("tcp", peers[owner])
	if err != nil {
		t.Fatal(err)
	}
	gws[owner], stops[owner] = startReplica(t, ln, peers, opts)
	more, status, body := spend()
	t.Logf("%d requests passed a budget of %d tokens; after its counter's owner restarted, %d more, then %d %s", ok, budget, more, status, body)
	if more != 0 {
		t.Errorf("%d requests passed a spent budget after its counter's owner restarted", more)
	}
}
