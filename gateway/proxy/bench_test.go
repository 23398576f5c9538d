package proxy

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"testing"
)

// BenchmarkProxy measures the handler's overhead against a bare
// httputil.ReverseProxy doing the same round trip over the same transport
// to the same local upstream. Compare ns/op and allocs/op between the
// sub-benchmarks; the upstream's own cost is in all of them.
func BenchmarkProxy(b *testing.B) {
	answer := []byte(`{"id":"chatcmpl-1","object":"chat.completion","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}]}`)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(answer)
	}))
	defer upstream.Close()
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer transport.CloseIdleConnections()

	target, err := url.Parse(upstream.URL)
	if err != nil {
		b.Fatal(err)
	}
	bare := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { pr.SetURL(target) },
		Transport: transport,
	}
	proxy := New(testProviders(b, upstream.URL, upstream.URL), Options{
		Transport: transport,
		Metrics:   NewMetrics(nil),
		Logger:    slog.New(slog.DiscardHandler),
	})

	run := func(h http.Handler, path string, body []byte) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+clientKey)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		}
	}
	gpt := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`)
	claude := []byte(`{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"hello"}]}`)
	b.Run("bare-reverseproxy", run(bare, "/v1/chat/completions", gpt))
	b.Run("streamed", run(proxy, "/gateway/anthropic/v1/messages", gpt))
	b.Run("model-read", run(proxy, "/gateway/openai/v1/chat/completions", gpt))
	b.Run("model-routed", run(proxy, "/gateway/openai/v1/chat/completions", claude))
}
