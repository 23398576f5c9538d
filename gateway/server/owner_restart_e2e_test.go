package server_test

import (
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A total token budget, spent through one replica, whose counter's owner
// (static peers) restarts: the new process restores the count from
// status.usage, and the key stays refused; also when the peers' requests
// reach the restarted owner before its APIKeys are listed (issue 28's
// chaos run, seed 913: its peers' takes came 41 ms before its list, the
// budget started again from zero, and the key was billed 2,032 tokens
// against a budget of 1,780).
func TestBudgetHoldsWhenItsCounterOwnerRestarts(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	opts := server.Options{Providers: providersFor(t, up, up)}
	const budget = 300
	k, key := issueTokenBudgetKey(t, "owner-restarts", budget, gatewayv1alpha1.BudgetTotal)
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
	waitForUsage(t, k, ok)
	restart := func(cfg *rest.Config, o server.Options) {
		t.Helper()
		stops[owner]()
		ln, err := net.Listen("tcp", peers[owner])
		if err != nil {
			t.Fatal(err)
		}
		gws[owner], stops[owner] = startReplicaWith(t, cfg, ln, peers, o)
	}

	restart(env.Config, opts)
	if more, status, body := spend(); more != 0 || status != http.StatusTooManyRequests {
		t.Fatalf("after its counter's owner restarted, %d more requests passed a spent budget of %d tokens, then %d %s", more, budget, status, body)
	}

	// Again, the restarted owner ready before its APIKey list is in (as at
	// 100,000 keys): the front replica's request waits for the list there.
	cfg, _, release := holdAPIKeyLists(t)
	held := opts
	held.ListWait = time.Millisecond
	restart(cfg, held)
	// A request through the other replica meanwhile waits for the list
	// there, or is refused; never served. A 503 (the front replica not
	// reaching the restarted owner yet) is sent again.
	var waiting chan int
	testenv.Eventually(t, 15*time.Second, func() error {
		answered := make(chan int, 1)
		go func() {
			status, _, _ := postChat(t, gws[front].URL, key.Reveal(), "gpt-4o-mini")
			answered <- status
		}()
		select {
		case status := <-answered:
			switch status {
			case http.StatusOK:
				t.Fatalf("a spent budget of %d tokens served a request while its restarted counter owner had not listed its APIKeys", budget)
			case http.StatusServiceUnavailable:
				return fmt.Errorf("answered %d while the owner's list was held", status)
			}
			t.Logf("answered %d while the owner's list was held", status)
		case <-time.After(2 * time.Second):
			t.Log("no answer within 2 s while the owner's list was held: the take waits for the list there")
			waiting = answered
		}
		return nil
	})
	release()
	if waiting != nil {
		if status := <-waiting; status == http.StatusOK {
			t.Fatalf("a spent budget of %d tokens served a request taken while its restarted counter owner had not listed its APIKeys", budget)
		}
	}
	if more, status, body := spend(); more != 0 || status != http.StatusTooManyRequests || errorCode(t, body) != "budget_exceeded" {
		t.Errorf("once the restarted owner's list was in, %d more requests passed a spent budget of %d tokens, then %d %s", more, budget, status, body)
	}
}
