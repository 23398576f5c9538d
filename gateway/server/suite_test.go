package server_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// env is one real kube-apiserver + etcd for the package; every test runs a
// real manager and real gateways against it.
var env *testenv.Env

// logs captures every log line of the managers and gateways of this
// package, at debug level, so TestMain can check that none holds a key.
var logs = &testenv.LogBuffer{}

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	testenv.Main(m, &env, testenv.AfterTests(func(code int) int {
		if code != 0 {
			return code
		}
		if err := testenv.KeyLeaks("gateway and manager logs", logs.String(), env.IssuedKeys()); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return code
	}))
}

// upstream is a fake LLM provider that answers like OpenAI (echo) and
// records what it received.
type upstream struct {
	*httptest.Server
	echo *devmode.EchoUpstream
	mu   sync.Mutex
	reqs []recorded
	// done receives once per finished request, with its context error.
	done chan error
}

type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newUpstream(t *testing.T, chunkDelay time.Duration) *upstream {
	u := &upstream{echo: &devmode.EchoUpstream{ChunkDelay: chunkDelay}, done: make(chan error, 100)}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.reqs = append(u.reqs, recorded{r.Method, r.URL.RequestURI(), r.Header.Clone(), body})
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		u.echo.ServeHTTP(w, r)
		select {
		case u.done <- r.Context().Err():
		default:
		}
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []recorded {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recorded(nil), u.reqs...)
}

// providersFor is the providers file of DESIGN 7.2 pointed at two fake
// upstreams, with claude-* routed from openai to anthropic.
func providersFor(t *testing.T, openai, anthropic *upstream) *providers.Providers {
	t.Helper()
	yaml := fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential:
      header: Authorization
      format: "Bearer {value}"
      env: OPENAI_API_KEY
    models:
      "claude-*": anthropic
  anthropic:
    baseURL: %s
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    headers: {anthropic-version: "2023-06-01"}
`, openai.URL, anthropic.URL)
	env := map[string]string{"OPENAI_API_KEY": "sk-upstream-openai", "ANTHROPIC_API_KEY": "sk-ant-upstream"}
	p, err := providers.ParseProviders([]byte(yaml), func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// gateway is one running replica.
type gateway struct {
	URL string
	*server.Gateway
	PeerAddr string // where its peers reach it; empty for a single replica
	// MetricsURL is the base URL of its metrics listener (URL does not
	// serve /metrics).
	MetricsURL string
}

// withMetricsListener gives o a metrics listener of its own, unless it has
// one, and returns its base URL.
func withMetricsListener(t *testing.T, o *server.Options) string {
	t.Helper()
	if o.MetricsListener == nil {
		o.MetricsListener = testenv.Listener(t)
	}
	return "http://" + o.MetricsListener.Addr().String()
}

// startGateway runs a gateway replica until the test ends and waits until
// it is ready (first sync done).
func startGateway(t *testing.T, o server.Options) *gateway {
	t.Helper()
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	metrics := withMetricsListener(t, &o)
	url, g := testenv.StartGateway(t, env.Config, o)
	gw := &gateway{URL: url, Gateway: g, MetricsURL: metrics}
	return gw
}

// chat sends the docs' request with key in the Authorization header (none
// for "").
func chat(t *testing.T, url, key string) (int, http.Header, []byte) {
	t.Helper()
	status, h, body := testenv.PostChatWithHeaders(t, url, key, testenv.DocsChatBody)
	return status, h, []byte(body)
}

// startLongStream starts a streamed chat with key through gw whose answer,
// from an upstream that waits between chunks, would take 100 chunks to
// finish, reads its first 3 lines and returns the rest.
func startLongStream(t *testing.T, gw *gateway, key keys.Key) *bufio.Scanner {
	t.Helper()
	lines := bufio.NewScanner(postLongStream(t, gw, key).Body)
	for i := 0; i < 3 && lines.Scan(); i++ {
	}
	return lines
}

// postLongStream sends startLongStream's request and returns the answer
// unread; its body is closed when the test ends, so an admitted stream
// holds its concurrency slot until then.
func postLongStream(t *testing.T, gw *gateway, key keys.Key) *http.Response {
	t.Helper()
	words := strings.Repeat("word ", 100)
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"`+words+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}
