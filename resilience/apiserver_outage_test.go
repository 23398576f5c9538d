package resilience

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// outage is how long the API server is down. The issue asks for 30 s; set
// CODEVECTOR_OUTAGE (a Go duration) for a longer soak.
func outage() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("CODEVECTOR_OUTAGE")); err == nil && d > 0 {
		return d
	}
	return 30 * time.Second
}

// The API server goes away for 30 s while a gateway serves traffic: the
// gateway keeps authenticating the keys it knows (fail-static, visible in
// /readyz and a metric), resumes watching when the API server is back, and
// a revocation made right after recovery takes effect within a second.
// Keys whose creation the outage interrupted are issued afterwards.
func TestAPIServerOutageIsFailStatic(t *testing.T) {
	ctx := context.Background()
	env.StartManager(t, manager.Options{})
	up := httptest.NewServer(&devmode.EchoUpstream{})
	defer up.Close()
	ps, err := providers.ParseProviders([]byte("providers:\n  openai:\n    baseURL: "+up.URL+"\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	gw := startInProcessGateway(t, server.Options{Providers: ps, APIServerProbeInterval: 250 * time.Millisecond})
	ns := env.Namespace(t)
	kUsed, used := env.IssueKey(t, ns, "used-before")
	_, unused := env.IssueKey(t, ns, "never-used-before")
	if status := chatStatus(gw.url, used); status != http.StatusOK {
		t.Fatalf("key before the outage: %d", status)
	}

	// Load: one client using a cached key all along.
	var sent, failed atomic.Int64
	stopLoad := make(chan struct{})
	var loadDone sync.WaitGroup
	loadDone.Add(1)
	go func() {
		defer loadDone.Done()
		for {
			select {
			case <-stopLoad:
				return
			default:
			}
			sent.Add(1)
			if chatStatus(gw.url, used) != http.StatusOK {
				failed.Add(1)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()

	// Keys created just before the outage: their issue is cut short.
	for i := range 5 {
		k := &gatewayv1alpha1.APIKey{}
		k.Namespace, k.Name = ns, fmt.Sprintf("during-%d", i)
		testenv.SealToTests(k)
		if err := env.Client.Create(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	restart := stopAPIServer(t)
	down := time.Now()
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, body := get(gw.url + "/readyz"); !strings.Contains(body, "fail-static") {
			return fmt.Errorf("/readyz does not report the outage: %q", body)
		}
		if v := gauge(t, gw, "codevector_gateway_apiserver_reachable"); v != 0 {
			return fmt.Errorf("apiserver_reachable = %v during the outage", v)
		}
		return nil
	})
	if status, _ := get(gw.url + "/readyz"); status != http.StatusOK {
		t.Errorf("/readyz = %d during the outage; a synced gateway stays ready (fail-static)", status)
	}
	if status := chatStatus(gw.url, unused); status != http.StatusOK {
		t.Errorf("a known key never used before the outage: %d during the outage", status)
	}
	time.Sleep(time.Until(down.Add(outage())))
	restart()
	t.Logf("API server down for %v; %d requests during the test, %d failed", time.Since(down).Round(time.Second), sent.Load(), failed.Load())

	// Right after recovery: a revocation reaches the gateway within a second.
	testenv.Eventually(t, 10*time.Second, func() error {
		return env.Client.Get(ctx, client.ObjectKeyFromObject(kUsed), kUsed)
	})
	base := kUsed.DeepCopy()
	kUsed.Spec.Revoked = true
	if err := env.Client.Patch(ctx, kUsed, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	revokedAt := time.Now()
	close(stopLoad)
	loadDone.Wait()
	if failed.Load() > 0 {
		t.Errorf("%d of %d requests with a cached key failed while the API server was down", failed.Load(), sent.Load())
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if status := chatStatus(gw.url, used); status != http.StatusUnauthorized {
			return fmt.Errorf("revoked key still answered %d", status)
		}
		return nil
	})
	if d := time.Since(revokedAt); d > time.Second {
		t.Errorf("revocation after recovery took %v to reach the gateway, want within 1s", d.Round(time.Millisecond))
	} else {
		t.Logf("revocation after recovery reached the gateway in %v", d.Round(time.Millisecond))
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if _, body := get(gw.url + "/readyz"); !strings.Contains(body, "apiserver: reachable") {
			return fmt.Errorf("/readyz after recovery: %q", body)
		}
		return nil
	})

	// The keys created as the outage began were issued. The manager's
	// watches come back on client-go's own backoff (up to a minute after a
	// long outage): issuing may wait, nothing is lost.
	for i := range 5 {
		name := fmt.Sprintf("during-%d", i)
		k := env.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 90*time.Second)
		plain, err := testenv.Reveal(ctx, env.Client, k)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if status := chatStatus(gw.url, plain); status != http.StatusOK {
			t.Errorf("%s, created as the outage began: %d through the gateway", name, status)
		}
	}
}

// stopAPIServer stops kube-apiserver (etcd keeps running) and returns a
// function that starts it again on the same port with the same
// certificates, so every client's configuration keeps working.
func stopAPIServer(t *testing.T) (restart func()) {
	t.Helper()
	api := env.ControlPlane.APIServer
	keep := t.TempDir()
	entries, err := os.ReadDir(api.CertDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(api.CertDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(keep, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// It would drain its watches for up to a minute; after two seconds it
	// is killed outright, which is the harsher outage anyway.
	api.StopTimeout = 2 * time.Second
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process kube-apiserver to stop") {
		t.Fatal(err)
	}
	return func() {
		api.CertDir = keep
		if err := api.Start(); err != nil {
			t.Fatalf("restarting kube-apiserver: %v", err)
		}
		// A restarted API server answers before it serves the CRD again,
		// and a client that asked meanwhile may keep a discovery without
		// it. The tests after this one create APIKeys at once: wait until
		// a fresh client can list them, and hand that client on.
		testenv.Eventually(t, 90*time.Second, func() error {
			c, err := client.New(env.Config, client.Options{Scheme: env.Client.Scheme()})
			if err != nil {
				return err
			}
			if err := c.List(context.Background(), &gatewayv1alpha1.APIKeyList{}, client.Limit(1)); err != nil {
				return err
			}
			env.Client = c
			return nil
		})
	}
}

type inProcessGateway struct {
	*server.Gateway
	url string
}

func startInProcessGateway(t *testing.T, o server.Options) *inProcessGateway {
	t.Helper()
	o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	url, g := testenv.StartGateway(t, env.Config, o)
	return &inProcessGateway{Gateway: g, url: url}
}

func chatStatus(url string, key keys.Key) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func gauge(t *testing.T, gw *inProcessGateway, name string) float64 {
	t.Helper()
	families, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}
