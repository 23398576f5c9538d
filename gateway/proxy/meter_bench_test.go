package proxy

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/metering/meteringtest"
)

// benchMeter admits everything and keeps nothing: the cost measured is the
// proxy's.
type benchMeter struct{ policy bool }

func (m benchMeter) For(*http.Request) metering.RequestMeter {
	if !m.policy {
		return nil
	}
	return m
}

func (benchMeter) Admit(context.Context, metering.Request) metering.Admission {
	return metering.Admission{Settle: settleNothing}
}
func (benchMeter) AllowsModel(string) bool { return true }
func (benchMeter) Refused(string)          {}

func settleNothing(metering.Usage) {}

// BenchmarkMeter compares a request without a Meter, through a Meter for
// a key without policy (For returns nil), and metered, for a JSON answer
// and for a stream whose usage the proxy asks for and hides. The upstream
// answers as OpenAI does; its cost is in all of them.
func BenchmarkMeter(b *testing.B) {
	stream := []byte(strings.Join(meteringtest.ChatStream(true), ""))
	plain := []byte(strings.Join(meteringtest.ChatStream(false), ""))
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			if bytes.Contains(body, []byte(`"include_usage":true`)) {
				_, _ = w.Write(stream)
			} else {
				_, _ = w.Write(plain)
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, meteringtest.OpenAIChatJSON)
	}))
	defer upstream.Close()
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer transport.CloseIdleConnections()

	newProxy := func(m metering.Meter) *Proxy {
		return New(testProviders(b, upstream.URL, upstream.URL), Options{
			Transport: transport,
			Metrics:   NewMetrics(nil),
			Logger:    slog.New(slog.DiscardHandler),
			Meter:     m,
		})
	}
	run := func(h http.Handler, body string, want []byte) func(*testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/gateway/openai/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+clientKey)
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || want != nil && !bytes.Equal(rec.Body.Bytes(), want) {
					b.Fatalf("status %d: %s", rec.Code, rec.Body)
				}
			}
		}
	}
	// The openai provider of testProviders routes by model, so its body is
	// read without a Meter too (BenchmarkProxy/model-read).
	const chat = `{"model":"gpt-4o","messages":[{"role":"user","content":"hello"}]}`
	const chatStreamed = `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hello"}]}`
	b.Run("json/no-meter", run(newProxy(nil), chat, nil))
	b.Run("json/no-policy", run(newProxy(benchMeter{}), chat, nil))
	b.Run("json/metered", run(newProxy(benchMeter{policy: true}), chat, nil))
	b.Run("stream/no-meter", run(newProxy(nil), chatStreamed, plain))
	b.Run("stream/metered-usage-hidden", run(newProxy(benchMeter{policy: true}), chatStreamed, plain))
}
