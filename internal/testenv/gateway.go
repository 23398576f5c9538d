package testenv

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/codevector/codevector/gateway/server"
)

// StartGateway runs a real gateway replica against cfg's API server on a
// loopback port until the test ends, and returns once /readyz says its
// watches have synced (failing the test after 15 s).
func StartGateway(t testing.TB, cfg *rest.Config, o server.Options) (url string, g *server.Gateway) {
	t.Helper()
	return StartGatewayWithin(t, 15*time.Second, cfg, o)
}

// StartGatewayWithin is StartGateway with a longer wait for readiness, for
// gateways that start over many keys.
func StartGatewayWithin(t testing.TB, ready time.Duration, cfg *rest.Config, o server.Options) (url string, g *server.Gateway) {
	t.Helper()
	url, g, _ = RunGateway(t, ready, cfg, o)
	return url, g
}

// RunGateway is StartGatewayWithin that also returns a stop function, for
// benchmarks that start gateways one after another; the gateway stops when
// the test ends if stop was not called.
func RunGateway(t testing.TB, ready time.Duration, cfg *rest.Config, o server.Options) (url string, g *server.Gateway, stop func()) {
	t.Helper()
	return RunGatewayOn(t, Listener(t), ready, cfg, o)
}

// RunGatewayOn is RunGateway on a listener the test opened, for options
// that need the gateway's address before it starts (an OIDC redirect URL).
func RunGatewayOn(t testing.TB, ln net.Listener, ready time.Duration, cfg *rest.Config, o server.Options) (url string, g *server.Gateway, stop func()) {
	t.Helper()
	g, err := server.New(cfg, o)
	if err != nil {
		ln.Close()
		t.Fatalf("creating gateway: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx, ln) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway stopped with error: %v", err)
		}
	})
	t.Cleanup(stop)
	url = "http://" + ln.Addr().String()
	Eventually(t, ready, func() error {
		resp, err := http.Get(url + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("gateway /readyz = %d", resp.StatusCode)
		}
		return nil
	})
	return url, g, stop
}

// LogBuffer collects log output from several goroutines, for tests that
// check what was logged.
type LogBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LogBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
