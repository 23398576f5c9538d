package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

// /metrics labels its series with key owners and namespaces: it is served
// on the metrics listener only, and the public listener, which anyone who
// reaches the gateway can ask, answers 404 (issue 24).
func TestMetricsOnlyOnTheMetricsListener(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	ns := env.Namespace(t)
	_, key := env.IssueKey(t, ns, "scraped")
	if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
		t.Fatalf("chat: %d %s", status, body)
	}

	fetch := func(url string) (int, string) {
		t.Helper()
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, path := range []string{"/metrics", "/metrics/", "/METRICS"} {
		if status, body := fetch(gw.URL + path); status != http.StatusNotFound || strings.Contains(body, "codevector_") {
			t.Errorf("public listener %s: %d %.200q, want 404 and no metrics", path, status, body)
		}
	}
	status, body := fetch(gw.MetricsURL + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, "codevector_gateway_") {
		t.Errorf("metrics listener /metrics: %d %.200q, want the gateway's metrics", status, body)
	}
	// And nothing else: the metrics listener is no second way in.
	for _, path := range []string{"/api-keys", "/api/v1/apikeys", "/gateway/openai/v1/models", "/docs/", "/readyz"} {
		if status, _ := fetch(gw.MetricsURL + path); status != http.StatusNotFound {
			t.Errorf("metrics listener %s: %d, want 404", path, status)
		}
	}
}
