package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// listHold holds every full list of APIKeys until released: in miniature,
// an API server that takes 20 s to encode 100,000 of them. Watches, single
// reads and lists of one go through.
type listHold struct {
	next     http.RoundTripper
	released chan struct{}
	held     atomic.Int32
	// failReads, when set, fails every read of a single APIKey, as an API
	// server too busy to answer in time does.
	failReads atomic.Bool
}

func (h *listHold) RoundTrip(r *http.Request) (*http.Response, error) {
	q := r.URL.Query()
	if h.failReads.Load() && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/apikeys/") {
		return nil, fmt.Errorf("test: the API server did not answer in time")
	}
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/apikeys") && q.Get("watch") != "true" && q.Get("limit") != "1" {
		h.held.Add(1)
		select {
		case <-h.released:
		case <-r.Context().Done():
			return nil, r.Context().Err()
		}
	}
	return h.next.RoundTrip(r)
}

// holdAPIKeyLists returns a config whose full APIKey lists wait until
// release is called.
func holdAPIKeyLists(t *testing.T) (cfg *rest.Config, hold *listHold, release func()) {
	hold = &listHold{released: make(chan struct{})}
	cfg = rest.CopyConfig(env.Config)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { hold.next = rt; return hold })
	released := false
	release = func() {
		if !released {
			released = true
			close(hold.released)
		}
	}
	t.Cleanup(release)
	return cfg, hold, release
}

// Issue 15: a gateway is ready once it holds every hash and watches
// APIKeys, without waiting for the API server to list every APIKey (at
// 100,000 keys most of a start). Until the list is in, it reads the APIKey
// of a key in use from the API server, and a revocation or a new key
// reaches it through the watch as it happens. The old gateway was never
// ready while the list was held.
func TestGatewayReadyBeforeEveryAPIKeyIsListed(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	ns := env.Namespace(t)
	_, inUse := env.IssueKey(t, ns, "in-use")
	toRevoke, revokedLater := env.IssueKey(t, ns, "revoked-later")
	revokedBefore, revokedEarlier := env.IssueKey(t, ns, "revoked-before")
	patch(t, revokedBefore, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })

	cfg, hold, release := holdAPIKeyLists(t)
	url, gw := testenv.StartGatewayWithin(t, 10*time.Second, cfg, server.Options{Providers: providersFor(t, up, up), Console: console.Options{Namespace: ns, Auth: console.AuthDev}, ListWait: time.Millisecond})
	if hold.held.Load() == 0 {
		t.Fatal("the gateway listed no APIKeys through the hold: the test holds nothing")
	}
	select {
	case <-gw.Index().Listed():
		t.Fatal("the index says every APIKey is listed while the list is held")
	default:
	}

	if status, _, body := chat(t, url, inUse.Reveal()); status != http.StatusOK {
		t.Errorf("a key in use before its APIKey was listed: %d %s", status, body)
	}
	if status, _, _ := chat(t, url, revokedEarlier.Reveal()); status != http.StatusUnauthorized {
		t.Errorf("a key revoked before the gateway started: %d, want 401", status)
	}
	wrong, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := chat(t, url, wrong.Reveal()); status != http.StatusUnauthorized {
		t.Errorf("an unknown key: %d, want 401", status)
	}

	// A revocation while the list is held reaches the gateway through its
	// watch, not when the list comes.
	if status, _, body := chat(t, url, revokedLater.Reveal()); status != http.StatusOK {
		t.Fatalf("the key to revoke, before: %d %s", status, body)
	}
	patch(t, toRevoke, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	testenv.Eventually(t, time.Second, func() error {
		if status, _, _ := chat(t, url, revokedLater.Reveal()); status != http.StatusUnauthorized {
			return fmt.Errorf("the key revoked while the list was held still answers %d", status)
		}
		return nil
	})
	// A key issued meanwhile works at once.
	_, issued := env.IssueKey(t, ns, "issued-meanwhile")
	testenv.Eventually(t, 5*time.Second, func() error {
		if status, _, body := chat(t, url, issued.Reveal()); status != http.StatusOK {
			return fmt.Errorf("a key issued while the list was held: %d %s", status, body)
		}
		return nil
	})

	// The console lists keys from the index: it waits for the list rather
	// than show a partial one.
	listed := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url+"/api/v1/apikeys", nil)
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			listed <- 0
			return
		}
		resp.Body.Close()
		listed <- resp.StatusCode
	}()
	select {
	case status := <-listed:
		t.Fatalf("the console listed keys (%d) while the list was held", status)
	case <-time.After(300 * time.Millisecond):
	}

	release()
	select {
	case <-gw.Index().Listed():
	case <-time.After(10 * time.Second):
		t.Fatal("the index never held every APIKey after the list was released")
	}
	if status := <-listed; status != http.StatusOK {
		t.Errorf("the console's list after the APIKeys were listed: %d, want 200", status)
	}
	for _, name := range []string{"in-use", "revoked-later", "revoked-before", "issued-meanwhile"} {
		f := gw.Index().APIKey(types.NamespacedName{Namespace: ns, Name: name})
		if f == nil {
			t.Errorf("the index lacks APIKey %s after the list", name)
			continue
		}
		if revoked := name == "revoked-later" || name == "revoked-before"; f.Revoked != revoked {
			t.Errorf("APIKey %s: revoked %v in the index after the list, want %v", name, f.Revoked, revoked)
		}
	}
	for key, want := range map[keys.Key]int{inUse: http.StatusOK, issued: http.StatusOK, revokedLater: http.StatusUnauthorized, revokedEarlier: http.StatusUnauthorized} {
		if status, _, _ := chat(t, url, key.Reveal()); status != want {
			t.Errorf("%s after the list: %d, want %d", key.DisplayPrefix(), status, want)
		}
	}
}

// While the list is held, a key whose APIKey cannot be read (the API
// server is overloaded by the list itself) is neither refused as unknown
// nor let through: 503, which clients retry, until the read succeeds.
func TestGatewayAsksToRetryAKeyItCannotReadYet(t *testing.T) {
	stopManager := env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	ns := env.Namespace(t)
	_, k := env.IssueKey(t, ns, "unreadable")
	// No more writes to the APIKey: the manager's last ones (after the
	// reveal) would reach the gateway's watch and hand it the APIKey that
	// this test means to be unreadable.
	stopManager()

	cfg, hold, _ := holdAPIKeyLists(t)
	hold.failReads.Store(true)
	url, _ := testenv.StartGatewayWithin(t, 10*time.Second, cfg, server.Options{Providers: providersFor(t, up, up), ListWait: time.Millisecond})

	status, _, body := chat(t, url, k.Reveal())
	if status != http.StatusServiceUnavailable || !strings.Contains(string(body), "server_busy") {
		t.Errorf("a valid key whose APIKey could not be read: %d %s, want 503 server_busy", status, body)
	}
	wrong, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := chat(t, url, wrong.Reveal()); status != http.StatusUnauthorized {
		t.Errorf("an unknown key while reads fail: %d, want 401", status)
	}
	hold.failReads.Store(false)
	if status, _, body := chat(t, url, k.Reveal()); status != http.StatusOK {
		t.Errorf("the key once its APIKey can be read: %d %s", status, body)
	}
}

// A replica whose APIKey list comes within ListWait of its start waits for
// it before it reports ready, so it takes no traffic while it would still
// read keys one by one from the API server (at 10,000 keys in a rollout,
// while the API server lists keys to it).
func TestGatewayWaitsForAListThatComesWithinListWait(t *testing.T) {
	up := newUpstream(t, 0)
	ns := env.Namespace(t)
	env.StartManager(t, manager.Options{})
	_, k := env.IssueKey(t, ns, "listed")

	cfg, hold, release := holdAPIKeyLists(t)
	// Released well after the hashes are in (a fraction of a second here):
	// a replica that did not wait for its list would be ready by then.
	time.AfterFunc(3*time.Second, release)
	start := time.Now()
	url, gw := testenv.StartGatewayWithin(t, 20*time.Second, cfg, server.Options{Providers: providersFor(t, up, up), ListWait: 20 * time.Second})
	select {
	case <-gw.Index().Listed():
	default:
		t.Fatalf("ready after %v with the APIKey list still held (%d held lists): it did not wait for a list within ListWait", time.Since(start).Round(time.Millisecond), hold.held.Load())
	}
	if status, _, body := chat(t, url, k.Reveal()); status != http.StatusOK {
		t.Errorf("a listed key: %d %s", status, body)
	}
}
