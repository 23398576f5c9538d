package server_test

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// A replica with peers starts its quota engine only once it has read the
// peers' credential, and it serves requests before that (its index is
// filled, its listener open). A key with limits is then refused with 503,
// whatever --limits-failure-mode says, never served uncounted; once the
// engine runs, the same key is counted.
func TestNothingServedUncountedWhileTheGatewayStarts(t *testing.T) {
	ctx := t.Context()
	// A system namespace of its own: the peer credential other tests'
	// managers created is not in it, so the engine waits for the test.
	system, ns := env.Namespace(t), env.Namespace(t)
	key, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	env.Issued(key)
	phc, err := keys.Hash(key, keys.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := keys.ParsePHC(phc)
	if err != nil {
		t.Fatal(err)
	}
	ak := &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "limited"},
		Spec: gatewayv1alpha1.APIKeySpec{DisplayName: "limited",
			Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](1)}},
	}
	if err := env.Client.Create(ctx, ak); err != nil {
		t.Fatal(err)
	}
	if err := testenv.WriteIssuedKeyIn(ctx, env.Client, system, ak, key, parsed); err != nil {
		t.Fatal(err)
	}

	up := newUpstream(t, 0)
	o := server.Options{Providers: providersFor(t, up, up), SystemNamespace: system, Namespaces: []string{ns},
		Clock: minuteStartClock(t), LimitsFailureMode: "open",
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	o.Peers.Listener = testenv.Listener(t)
	withMetricsListener(t, &o)
	g, err := server.New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ln := testenv.Listener(t)
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx, ln) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with error: %v", err)
		}
	})
	url := "http://" + ln.Addr().String()

	// Until the credential exists: the key authenticates, and is refused.
	testenv.Eventually(t, 15*time.Second, func() error {
		if g.Index().Lookup(key.ID()) == nil {
			return errors.New("the index has no entry for the key")
		}
		return nil
	})
	for range 3 {
		status, h, body := chat(t, url, key.Reveal())
		if status != http.StatusServiceUnavailable || errorCode(t, string(body)) != "limits_unavailable" || h.Get("Retry-After") != "1" {
			t.Fatalf("before the quota engine started: %d (Retry-After %q) %s, want 503 limits_unavailable after 1 s", status, h.Get("Retry-After"), body)
		}
	}
	if n := len(up.requests()); n != 0 {
		t.Fatalf("the upstream served %d requests of a key with limits before they could be counted", n)
	}

	if _, err := mesh.EnsureCredential(ctx, env.Client, system); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 20*time.Second, func() error {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New("not ready")
		}
		return nil
	})
	if status, _, body := chat(t, url, key.Reveal()); status != http.StatusOK {
		t.Fatalf("once the engine started: %d %s, want 200", status, body)
	}
	// Counted: the minute's one request is spent.
	if status, _, body := chat(t, url, key.Reveal()); status != http.StatusTooManyRequests {
		t.Fatalf("second request of a 1-per-minute key: %d %s, want 429", status, body)
	}
}

// A replica stopped while it still waits for the peer credential (the
// manager has not created it yet) stops cleanly: waiting was not a
// failure, so Run returns no error.
func TestStoppedWhileWaitingForThePeerCredential(t *testing.T) {
	system := env.Namespace(t) // no credential in it
	up := newUpstream(t, 0)
	o := server.Options{Providers: providersFor(t, up, up), SystemNamespace: system,
		Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	o.Peers.Listener = testenv.Listener(t)
	g, err := server.New(env.Config, o)
	if err != nil {
		t.Fatal(err)
	}
	ln := testenv.Listener(t)
	runCtx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- g.Run(runCtx, ln) }()
	// Its quota engine waits for the credential (after the keys' first
	// sync).
	waiting := `"secret":"` + system + "/" + mesh.PeerSecretName + `"`
	testenv.Eventually(t, 15*time.Second, func() error {
		if !strings.Contains(logs.String(), waiting) {
			return errors.New("the gateway does not wait for the peer credential yet")
		}
		return nil
	})
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("stopped while waiting for the peer credential: Run = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return 30 s after its context ended")
	}
}
