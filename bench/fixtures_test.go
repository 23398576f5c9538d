package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// fixedCompletion is the fast upstream's whole answer: a canned OpenAI chat
// completion. The upstream costs as little as an HTTP server can, so what
// the load tests see is the proxies' own cost.
var (
	fixedCompletion = []byte(`{"id":"chatcmpl-bench","object":"chat.completion","created":1767225600,"model":"gpt-4o-mini",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":9,"completion_tokens":9,"total_tokens":18}}` + "\n")
	fixedContentType   = []string{"application/json"}
	fixedContentLength = []string{strconv.Itoa(len(fixedCompletion))}
)

// fixedUpstream answers every request with fixedCompletion after reading
// the request body.
func fixedUpstream(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	h := w.Header()
	h["Content-Type"] = fixedContentType
	h["Content-Length"] = fixedContentLength
	_, _ = w.Write(fixedCompletion)
}

// serve runs h on a loopback port until the benchmark ends and returns its
// base URL.
func serve(b *testing.B, h http.Handler) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 90 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// bareProxy is the baseline: httputil.ReverseProxy in front of upstream, no
// authentication, with an upstream transport tuned like the gateway's own
// (the default transport keeps only two idle connections per host, which
// would handicap the baseline rather than measure it).
func bareProxy(b *testing.B, upstream string) string {
	b.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		b.Fatal(err)
	}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.SetXForwarded()
		},
		Transport: upstreamTransport(),
	}
	return serve(b, rp)
}

// upstreamTransport is tuned like gateway/proxy's own transport.
func upstreamTransport() *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        1024,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
}

// benchProviders is a providers file with one OpenAI-shaped provider in front of
// upstream. With routing, it also routes claude-* models elsewhere, as the
// docs' example does, which makes the gateway read every JSON body to find
// its model.
func benchProviders(b *testing.B, upstream string, routing bool) *providers.Providers {
	b.Helper()
	p, err := providers.ParseProviders([]byte(providersYAML(upstream, routing)), func(k string) string { return benchCredentials[k] })
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// benchCredentials are the providers' credentials, by the environment
// variable providersYAML reads each from.
var benchCredentials = map[string]string{"OPENAI_API_KEY": "sk-bench-openai", "ANTHROPIC_API_KEY": "sk-bench-anthropic"}

// providersYAML is the providers file of providers: openai at upstream
// and, with routing, anthropic too (claude-* models).
func providersYAML(upstream string, routing bool) string {
	yaml := fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential: {env: OPENAI_API_KEY}
`, upstream)
	if routing {
		yaml += fmt.Sprintf(`    models:
      "claude-*": anthropic
  anthropic:
    baseURL: %s
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    headers: {anthropic-version: "2023-06-01"}
`, upstream)
	}
	return yaml
}

// replica is one running gateway.
type replica struct {
	url string
	*server.Gateway
}

// startGateway runs a gateway replica, configured as `codevector gateway`
// runs it (info-level logging, default auth and proxy options), until the
// benchmark ends, and waits for its first sync.
func startGateway(b *testing.B, p *providers.Providers) *replica {
	b.Helper()
	url, g := testenv.StartGatewayWithin(b, 30*time.Second, env.Config, server.Options{
		Providers: p,
		// Per-request lines are Debug, so at Warn the request path does
		// what it does at the production default (Info); warnings show.
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	return &replica{url: url, Gateway: g}
}

// waitOK sends the benchmark request to t until it gets 200. Against a
// gateway this also warms its verified-key cache (the first request runs
// argon2id).
func waitOK(b *testing.B, t target) {
	b.Helper()
	if err := untilOK(t, 30*time.Second); err != nil {
		b.Fatal(err)
	}
}

// untilOK is waitOK for goroutines other than the benchmark's own.
func untilOK(t target, timeout time.Duration) error {
	c := newClient(1)
	defer c.CloseIdleConnections()
	return untilOKWith(c, t, timeout)
}

// untilOKWith is untilOK on a client the caller keeps, for many targets.
func untilOKWith(c *http.Client, t target, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		status, err := t.do(context.Background(), c, chatBody)
		if err == nil && status == http.StatusOK {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: no 200 within %v: %s", t.name, timeout, describeFailure(status, err))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newAPIKey is an APIKey as `kubectl apikey create` makes it: a name and
// the public key its reveal is sealed to.
func newAPIKey(ns, name string) *gatewayv1alpha1.APIKey {
	k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	testenv.SealToTests(k)
	return k
}

// createKeys creates n APIKeys named prefix-00000... with workers in
// parallel and returns when each was created (by name).
func createKeys(b *testing.B, ns, prefix string, n, workers int) map[string]time.Time {
	b.Helper()
	var (
		mu       sync.Mutex
		created  = make(map[string]time.Time, n)
		firstErr error
		wg       sync.WaitGroup
		next     = make(chan int)
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				name := fmt.Sprintf("%s-%05d", prefix, i)
				err := env.Client.Create(context.Background(), newAPIKey(ns, name))
				at := time.Now()
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("creating APIKey %s/%s: %w", ns, name, err)
				}
				created[name] = at
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return created
}

// issuedKey is an Active APIKey and its plaintext.
type issuedKey struct {
	apiKey *gatewayv1alpha1.APIKey
	key    keys.Key
}

// issueKeys creates n APIKeys, waits until all are Active and consumes their
// reveals, as the console does. A manager must be running.
func issueKeys(b *testing.B, ns, prefix string, n int) []issuedKey {
	b.Helper()
	createKeys(b, ns, prefix, n, 8)
	var list gatewayv1alpha1.APIKeyList
	testenv.Eventually(b, time.Duration(n)*time.Second/5+30*time.Second, func() error {
		list = gatewayv1alpha1.APIKeyList{}
		if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return err
		}
		active := 0
		for _, k := range list.Items {
			if k.Status.Phase == gatewayv1alpha1.PhaseActive {
				active++
			}
		}
		if active < n {
			return fmt.Errorf("%d of %d APIKeys Active", active, n)
		}
		return nil
	})
	out := make([]issuedKey, len(list.Items))
	errs := make([]error, len(list.Items))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := range list.Items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			k := &list.Items[i]
			plain, err := testenv.Reveal(context.Background(), env.Client, k)
			out[i], errs[i] = issuedKey{apiKey: k, key: plain}, err
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return out
}
