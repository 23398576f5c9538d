package console_test

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
)

// revoked mirrors the revoke API's answer.
type revoked struct {
	Status     string `json:"status"`
	Revocation struct {
		Confirmed bool `json:"confirmed"`
		Refusing  int  `json:"refusing"`
		Replicas  int  `json:"replicas"`
		Pending   []struct {
			Name string `json:"name"`
		} `json:"pending"`
		ElapsedMS int64  `json:"elapsedMs"`
		Message   string `json:"message"`
	} `json:"revocation"`
}

// The console's Revoke answers only once every gateway replica refuses
// the key, and says so: a replica whose watch of the API server lags is
// waited for, so that right after the answer every replica answers 401;
// one whose watch hangs is named, with 202, and the answer is true (that
// replica does still accept the key).
func TestAPIRevokeIsConfirmedByEveryReplica(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) {
		o.ReplicaName = "console"
		o.Console.ConfirmTimeout = 3 * time.Second
	})
	ps, err := providers.ParseProviders(fmt.Appendf(nil, "providers:\n  openai:\n    baseURL: %s\n    credential: {env: OPENAI_API_KEY}\n", s.upstream.URL),
		func(string) string { return "sk-upstream" })
	if err != nil {
		t.Fatal(err)
	}
	urls := []string{s.URL}
	var lagging *testenv.WatchDelay
	for i := range 2 {
		cfg, d := testenv.DelayWatches(gatewayConfig)
		o := server.Options{
			Providers: ps, Namespaces: []string{s.Namespace}, ReplicaName: fmt.Sprintf("gw-%d", i+1),
			Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		}
		o.Console.Namespace = s.Namespace
		url, _ := testenv.StartGateway(t, cfg, o)
		urls = append(urls, url)
		lagging = d
	}
	alice := s.as("alice@example.com")
	everyReplicaAnswers := func(key string, want int) {
		t.Helper()
		testenv.Eventually(t, 5*time.Second, func() error {
			for i, url := range urls {
				if status, _ := testenv.DocsChat(t, url, key); status != want {
					return fmt.Errorf("replica %d answered %d, want %d", i, status, want)
				}
			}
			return nil
		})
	}
	revoke := func(name string) (response, revoked) {
		t.Helper()
		rr := alice.revoke(t, name)
		var r revoked
		if err := json.Unmarshal(rr.Body, &r); err != nil {
			t.Fatalf("revoke answered %d %s", rr.Status, rr.Body)
		}
		return rr, r
	}

	// A lagging replica: the answer waits for it.
	lagging.Delay(300 * time.Millisecond)
	for i := range 3 {
		c, _ := alice.create(t, map[string]any{"displayName": fmt.Sprintf("laptop %d", i)})
		everyReplicaAnswers(c.Key, http.StatusOK)
		sent := time.Now()
		rr, r := revoke(c.APIKey.Name)
		answered := time.Since(sent)
		for j, url := range urls {
			if status, _ := testenv.DocsChat(t, url, c.Key); status != http.StatusUnauthorized {
				t.Errorf("revocation %d: replica %d answered %d right after the console said %q", i, j, status, r.Revocation.Message)
			}
		}
		rv := r.Revocation
		if rr.Status != http.StatusOK || r.Status != "Revoked" || !rv.Confirmed || rv.Refusing != 3 || rv.Replicas != 3 ||
			!strings.HasPrefix(rv.Message, "Revoked: refused by 3 of 3 gateway replicas in ") {
			t.Errorf("revocation %d: %d %s", i, rr.Status, rr.Body)
		}
		// The lagging replica sees the revocation 300 ms after the API
		// server sends it, which is after this request was sent, so an
		// answer that waited for it comes no sooner. (The console's own
		// ElapsedMS starts when the patch returns, which under load can be
		// well after the event was sent, so it cannot bound this.)
		if answered < 300*time.Millisecond {
			t.Errorf("revocation %d was confirmed %v after the request, before the lagging replica could have seen it", i, answered)
		}
		t.Logf("revocation %d: %s", i, rv.Message)
	}

	// A replica whose watch hangs: named, and the answer says what is true.
	lagging.Delay(0)
	c, _ := alice.create(t, map[string]any{"displayName": "desktop"})
	everyReplicaAnswers(c.Key, http.StatusOK)
	lagging.Stall()
	start := time.Now()
	rr, r := revoke(c.APIKey.Name)
	took := time.Since(start)
	rv := r.Revocation
	if rr.Status != http.StatusAccepted || rv.Confirmed || rv.Refusing != 2 || rv.Replicas != 3 || len(rv.Pending) != 1 || rv.Pending[0].Name != "gw-2" ||
		!strings.Contains(rv.Message, "only 2 of 3 gateway replicas confirmed within 3s: gw-2 (last heard ") {
		t.Errorf("revoke with a stalled replica: %d %s", rr.Status, rr.Body)
	}
	if took < 3*time.Second || took > 6*time.Second {
		t.Errorf("revoke with a stalled replica answered after %v, want the 3s bound", took)
	}
	if status, _ := testenv.DocsChat(t, urls[2], c.Key); status != http.StatusOK {
		t.Errorf("the stalled replica answered %d: the console's answer was not true", status)
	}
	lagging.Resume()
	everyReplicaAnswers(c.Key, http.StatusUnauthorized)
	// Revoking again confirms at once.
	if rr, r := revoke(c.APIKey.Name); rr.Status != http.StatusOK || !r.Revocation.Confirmed {
		t.Errorf("revoking again: %d %s", rr.Status, rr.Body)
	}
}
