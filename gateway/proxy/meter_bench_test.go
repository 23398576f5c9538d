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
)

// benchMeter admits everything and keeps nothing: the cost measured is the
// proxy's.
type benchMeter struct{ policy bool }

func (m benchMeter) For(*http.Request) RequestMeter {
	if !m.policy {
		return nil
	}
	return m
}

func (benchMeter) Admit(context.Context, Request) Admission { return Admission{Settle: settleNothing} }
func (benchMeter) AllowsModel(string) bool                  { return true }
func (benchMeter) Refused(string)                           {}

func settleNothing(Usage) {}

// BenchmarkMeter compares a request without a Meter, through a Meter for
// a key without policy (For returns nil), and metered, for a JSON answer
// and for a stream whose usage the proxy asks for and hides. The upstream
// answers as OpenAI does; its cost is in all of them.
func BenchmarkMeter(b *testing.B) {
	stream := []byte(strings.Join(chatStream(true), ""))
	plain := []byte(strings.Join(chatStream(false), ""))
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
		_, _ = io.WriteString(w, openAIChatJSON)
	}))
	defer upstream.Close()
	transport := &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 256, DisableCompression: true}
	defer transport.CloseIdleConnections()

	newProxy := func(m Meter) *Proxy {
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

// BenchmarkMeterParsing is the CPU metering adds per request, without the
// round trip that dominates BenchmarkMeter: reading the request body's
// fields and estimate, and scanning answers for usage.
func BenchmarkMeterParsing(b *testing.B) {
	request := []byte(`{"model":"gpt-4o","stream":true,"max_tokens":512,"messages":[{"role":"system","content":"` +
		strings.Repeat("You are a helpful assistant. ", 40) + `"},{"role":"user","content":"hello"}]}`)
	b.Run("request", func(b *testing.B) {
		b.SetBytes(int64(len(request)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := parseMetered(request)
			if err != nil || f.model != "gpt-4o" {
				b.Fatal(f, err)
			}
			_ = estimateInputTokens(request)
			if _, ok := injectIncludeUsage(request, &f); !ok {
				b.Fatal("not injected")
			}
		}
	})
	// The strict validation alone (validObject), on the request above
	// and on a 1 MiB conversation: what reading any Content-Type as one
	// I-JSON object costs.
	large := []byte(`{"model":"gpt-4o","messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum ", 80)+`"},`, 1000) + `{"role":"user","content":"hi"}]}`)
	for name, body := range map[string][]byte{"validate-1.2KiB": request, "validate-1MiB": large} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := validObject(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	scan := func(body string, sse bool) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if s := scanAll(body, sse, len(body)); s.usage.set == 0 {
					b.Fatal("no usage")
				}
			}
		}
	}
	b.Run("openai-json", scan(openAIChatJSON, false))
	b.Run("openai-sse", scan(strings.Join(chatStream(true), ""), true))
	b.Run("responses-sse", scan(openAIResponsesSSE, true))
	b.Run("anthropic-sse", scan(anthropicSSE, true))
}
