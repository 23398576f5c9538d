package server_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

// A gateway restricted to some namespaces accepts only their keys, and
// does not even hold the hashes of the others.
func TestNamespacesLimitWhichKeysAuthenticate(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	watched, other := env.Namespace(t), env.Namespace(t)
	_, in := env.IssueKey(t, watched, "in")
	_, out := env.IssueKey(t, other, "out")
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Namespaces: []string{watched}})

	if status, _, body := chat(t, gw.URL, in.Reveal()); status != http.StatusOK {
		t.Errorf("key in a watched namespace: %d %s", status, body)
	}
	status, h, body := chat(t, gw.URL, out.Reveal())
	assert401(t, "key in a namespace the gateway does not watch", status, h, body)
	if e := gw.Index().Lookup(out.ID()); e != nil {
		t.Errorf("the index holds the other namespace's key (hash %v): its hash Secret should not even be watched", e.Hash != nil)
	}
}

func TestNamespacesMustBeNamespaceNames(t *testing.T) {
	up := newUpstream(t, 0)
	_, err := server.New(env.Config, server.Options{Providers: providersFor(t, up, up), Namespaces: []string{"team-a", "Team B"}})
	if err == nil || !strings.Contains(err.Error(), `"Team B"`) {
		t.Errorf("server.New with namespace %q: error %v, want one naming it", "Team B", err)
	}
}
