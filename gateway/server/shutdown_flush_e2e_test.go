package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A stopping replica's last flush is done when Run returns: `codevector
// gateway` exits then, so a flush still under way would be lost with the
// process, and with it up to an interval of last-use times (and of usage,
// which the same shutdown flushes) on every pod a rollout replaces.
func TestRunReturnsAfterTheLastFlush(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	url, _, stop := testenv.RunGateway(t, 15*time.Second, env.Config, server.Options{
		Providers: providersFor(t, up, up),
		// Longer than the test: only the flush at shutdown writes.
		LastUsedInterval: time.Hour,
	})
	ns := env.Namespace(t)
	_, key := env.IssueKey(t, ns, "used-once")
	if status, _, _ := chat(t, url, key.Reveal()); status != http.StatusOK {
		t.Fatalf("chat with a valid key: %d", status)
	}
	stop() // returns once Run has
	if got := get(t, ns, "used-once").Status.LastUsedAt; got == nil {
		t.Error("lastUsedAt not written when Run returned; want it written by the last flush")
	}
}
