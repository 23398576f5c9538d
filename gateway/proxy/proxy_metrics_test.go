package proxy

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// syncBuffer is a log sink safe for the server goroutines that write to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestProxyMetricsAndLogs(t *testing.T) {
	openai := newFakeUpstream(t, nil)
	anthropic := newFakeUpstream(t, nil)
	reg := prometheus.NewPedanticRegistry()
	metrics := NewMetrics(prometheus.WrapRegistererWithPrefix("codevector_gateway_", reg)) // as the gateway registers them
	logs := &syncBuffer{}
	front := newFront(t, testProviders(t, openai.URL, anthropic.URL), Options{
		Metrics: metrics,
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		LogAttrs: func(r *http.Request) []slog.Attr {
			return []slog.Attr{slog.String("keyPrefix", clientKey[:12]), slog.String("owner", "alice")}
		},
	})

	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"claude-haiku"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+clientKey)
	if resp, body := do(t, req); resp.StatusCode != http.StatusOK {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	resp, body := do(t, newRequest(t, http.MethodGet, front.URL+"/gateway/nope/x", nil))
	checkJSONError(t, resp, body, http.StatusNotFound, "unknown_provider", "nope")

	// The count happens as the handler returns, which can be just after the
	// client has its response.
	eventually(t, "request metrics", func() bool {
		ok200 := findMetric(t, reg, "codevector_gateway_requests_total", "provider", "anthropic", "code", "200")
		ok404 := findMetric(t, reg, "codevector_gateway_requests_total", "provider", "", "code", "404")
		return ok200 != nil && ok200.GetCounter().GetValue() == 1 && ok404 != nil && ok404.GetCounter().GetValue() == 1
	})
	latency := func(provider string) uint64 {
		m := findMetric(t, reg, "codevector_gateway_upstream_latency_seconds", "provider", provider)
		if m == nil {
			t.Fatalf("no upstream latency series for %s", provider)
		}
		return m.GetHistogram().GetSampleCount()
	}
	if n := latency("anthropic"); n != 1 {
		t.Errorf("anthropic upstream latency observations = %d, want 1", n)
	}
	if n := latency("openai"); n != 0 {
		t.Errorf("openai upstream latency observations = %d, want 0", n)
	}

	eventually(t, "two log lines", func() bool { return strings.Count(logs.String(), `msg="Proxied request"`) == 2 })
	out := logs.String()
	for _, want := range []string{
		`provider=anthropic`, `routedFrom=openai`, `model=claude-haiku`, `status=200`,
		`keyPrefix=` + clientKey[:12], `owner=alice`, `status=404`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("logs lack %s:\n%s", want, out)
		}
	}
	for _, secret := range []string{clientKey, "sk-ant-test", "sk-openai-test"} {
		if strings.Contains(out, secret) {
			t.Errorf("logs contain a secret %q:\n%s", secret, out)
		}
	}
}

// findMetric returns the series of the named family whose labels are
// exactly labelPairs (name, value, name, value...), or nil.
func findMetric(t *testing.T, g prometheus.Gatherer, name string, labelPairs ...string) *dto.Metric {
	t.Helper()
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
	series:
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labelPairs); i += 2 {
				if v, ok := labels[labelPairs[i]]; !ok || v != labelPairs[i+1] {
					continue series
				}
			}
			return m
		}
	}
	return nil
}
