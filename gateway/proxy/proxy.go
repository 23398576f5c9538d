// Package proxy forwards /gateway/{provider}/{path...} to LLM providers
// (docs/design.md, section 7.2): it checks the path against the providers
// file (gateway/providers), picks the upstream from the URL, or from the
// request's "model" when the provider routes models elsewhere, swaps the
// client's key for the provider's credential and streams the response back.
// A request whose key has a policy goes through gateway/metering on its
// way (metering.Serve, with the proxy's meteredHop).
//
// It runs after authentication and knows nothing about API keys except that
// the client's key headers must never reach a provider.
package proxy

import (
	"bytes"
	"cmp"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"time"

	"github.com/codevector/codevector/gateway/httperr"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/providers"
)

// Defaults for Options fields left zero.
const (
	DefaultMaxRequestBodyBytes   = 10 << 20
	DefaultUpstreamHeaderTimeout = 60 * time.Second
	DefaultDialTimeout           = 10 * time.Second
)

// StatusClientClosedRequest is the status recorded in metrics and logs when
// the client went away before a response was written (nginx's convention).
// It is never sent.
const StatusClientClosedRequest = 499

// Options tune a Proxy. The zero value is usable.
type Options struct {
	// MaxRequestBodyBytes is the largest request body accepted; larger bodies
	// get 413. Default DefaultMaxRequestBodyBytes.
	MaxRequestBodyBytes int64
	// UpstreamHeaderTimeout bounds the wait for an upstream's response
	// headers; past it the client gets 504. It does not bound a stream once
	// headers have arrived. Non-streamed completions of reasoning models can
	// take minutes, so deployments serving them should raise it. Default
	// DefaultUpstreamHeaderTimeout. Ignored when Transport is set.
	UpstreamHeaderTimeout time.Duration
	// DialTimeout bounds connecting to an upstream. Default
	// DefaultDialTimeout. Ignored when Transport is set.
	DialTimeout time.Duration
	// Transport replaces the proxy's own tuned http.Transport (tests,
	// benchmarks). Its own timeouts then apply.
	Transport http.RoundTripper
	// Logger receives one Debug line per request and warnings about
	// upstream failures. Default slog.Default().
	Logger *slog.Logger
	// Metrics, if set, counts requests and observes upstream latency.
	Metrics *Metrics
	// LogAttrs, if set, adds attributes (such as the authenticated key prefix
	// and owner) to the per-request log line.
	LogAttrs func(*http.Request) []slog.Attr
	// Meter, if set, applies per-key policy: model allowlists, limits and
	// budgets (gateway/metering). Nil, or a Meter whose For returns nil for
	// a request, costs nothing.
	Meter metering.Meter
}

// Proxy is the http.Handler for /gateway/{provider}/{path...}. It parses the
// path itself, so it can be mounted under any router as long as the request
// path is left unchanged.
type Proxy struct {
	upstreams map[string]*upstream
	// providers answer, with their messages, requests that reach none.
	providers *providers.Providers
	maxBody   int64
	log       *slog.Logger
	metrics   *Metrics
	logAttrs  func(*http.Request) []slog.Attr
	meter     metering.Meter
	// transport is the proxy's own transport, nil when Options.Transport was
	// given.
	transport *http.Transport
}

// upstream is a provider ready to serve: one ReverseProxy per provider so
// that Rewrite knows its target without per-request context values.
type upstream struct {
	name     string
	provider *providers.Provider
	routes   []route
	rp       *httputil.ReverseProxy
}

type route struct {
	pattern string
	to      *upstream
}

// New builds a Proxy for the providers. Providers are fixed for the life of
// the Proxy; a changed providers file needs a new Proxy (a restart).
func New(ps *providers.Providers, opts Options) *Proxy {
	// --max-request-body and --upstream-timeout take any number, so a
	// negative one means the default too.
	if opts.MaxRequestBodyBytes <= 0 {
		opts.MaxRequestBodyBytes = DefaultMaxRequestBodyBytes
	}
	if opts.UpstreamHeaderTimeout <= 0 {
		opts.UpstreamHeaderTimeout = DefaultUpstreamHeaderTimeout
	}
	opts.DialTimeout = cmp.Or(opts.DialTimeout, DefaultDialTimeout) // no flag: only zero needs a default
	opts.Logger = cmp.Or(opts.Logger, slog.Default())
	p := &Proxy{
		upstreams: make(map[string]*upstream, len(ps.List())),
		maxBody:   opts.MaxRequestBodyBytes,
		log:       opts.Logger,
		metrics:   opts.Metrics,
		logAttrs:  opts.LogAttrs,
		meter:     opts.Meter,
		providers: ps,
	}
	transport := opts.Transport
	if transport == nil {
		p.transport = newTransport(opts)
		transport = p.transport
	}
	// ReverseProxy logs upstream read errors during a body copy here; a
	// client that went away is not among them.
	errorLog := slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	buffers := &bufferPool{}

	for _, prov := range ps.List() {
		up := &upstream{name: prov.Name, provider: prov}
		rt := transport
		if opts.Metrics != nil {
			rt = &timedTransport{next: transport, latency: opts.Metrics.UpstreamLatency.WithLabelValues(prov.Name)}
		}
		up.rp = &httputil.ReverseProxy{
			Rewrite:   p.rewrite(up),
			Transport: rt,
			// FlushInterval stays 0: ReverseProxy already flushes every
			// write of text/event-stream and unknown-length responses, which
			// is every stream. -1 would also flush fixed-length answers
			// write by write, through a timer goroutine per response: 20%
			// of the gateway's CPU per request (docs/benchmarks.md, "Gateway request path").
			BufferPool:     buffers,
			ErrorLog:       errorLog,
			ErrorHandler:   p.upstreamError(up),
			ModifyResponse: modifyResponse,
		}
		p.upstreams[prov.Name] = up
	}
	for _, up := range p.upstreams {
		for _, r := range up.provider.Models {
			up.routes = append(up.routes, route{pattern: r.Pattern, to: p.upstreams[r.Provider]})
		}
	}
	return p
}

// CloseIdleConnections closes idle upstream connections of the proxy's own
// transport (for shutdown and tests).
func (p *Proxy) CloseIdleConnections() {
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
}

func newTransport(opts Options) *http.Transport {
	dialer := &net.Dialer{Timeout: opts.DialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		Proxy:                  http.ProxyFromEnvironment,
		DialContext:            dialer.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           1024,
		MaxIdleConnsPerHost:    256,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    10 * time.Second,
		ExpectContinueTimeout:  time.Second,
		ResponseHeaderTimeout:  opts.UpstreamHeaderTimeout,
		MaxResponseHeaderBytes: 1 << 20,
		// Pass Accept-Encoding through as the client sent it instead of
		// having the gateway ask for gzip and decompress on its CPU.
		DisableCompression: true,
	}
}

// requestState is what ServeHTTP learns about a request, for the log line
// and metrics at the end.
type requestState struct {
	from  *upstream // named in the URL
	to    *upstream // serving the request, after model routing
	model string    // only read when from routes models
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &responseRecorder{ResponseWriter: w}
	var st requestState
	defer func() {
		// ReverseProxy aborts a response that failed mid-stream by panicking
		// with http.ErrAbortHandler, which the server handles quietly; count
		// and log the request, then let the panic continue.
		if v := recover(); v != nil {
			p.finish(rec, r, &st, start, true)
			panic(v)
		}
		p.finish(rec, r, &st, start, false)
	}()
	p.serve(rec, w, r, &st)
}

func (p *Proxy) serve(rec *responseRecorder, w http.ResponseWriter, r *http.Request, st *requestState) {
	name, rest, ok := splitPath(r.URL.Path)
	if !ok {
		httperr.Write(rec, http.StatusNotFound, httperr.TypeInvalidRequest, "unknown_provider", p.providers.NoProviderMessage())
		return
	}
	from := p.upstreams[name]
	if from == nil {
		httperr.Write(rec, http.StatusNotFound, httperr.TypeInvalidRequest, "unknown_provider", p.providers.UnknownProviderMessage(name, rest))
		return
	}
	st.from, st.to = from, from
	if hasDotSegment(rest) {
		httperr.Write(rec, http.StatusBadRequest, httperr.TypeInvalidRequest, "invalid_path",
			`path must not contain "." or ".." segments`)
		return
	}
	// Only the routes the providers file allows reach the provider; the
	// rest would run as the gateway's one provider identity, shared by
	// every key (files, batches, stored completions, the admin API).
	if !routeAllowed(from.provider, r, rest) {
		shown := rest // as the client wrote it: /v1/chat%2Fcompletions is not /v1/chat/completions
		if _, raw, ok := splitPath(r.URL.RawPath); ok {
			shown = raw
		}
		status, code, msg := from.provider.RouteRefusal(r.Method, truncate(shown, 128), rest)
		httperr.Write(rec, status, httperr.TypeInvalidRequest, code, msg)
		return
	}
	if r.ContentLength > p.maxBody {
		p.writeTooLarge(rec)
		return
	}
	if p.meter != nil {
		if rm := p.meter.For(r); rm != nil {
			p.serveMetered(rec, w, r, st, rest, rm)
			return
		}
	}

	if len(from.routes) > 0 && r.Method == http.MethodPost && metering.IsJSON(r.Header["Content-Type"]) {
		// The only case that buffers the body: the route depends on it.
		body, err := readBody(r, p.maxBody)
		if err != nil {
			p.bodyError(rec, r, err)
			return
		}
		st.model = metering.RequestModel(body)
		if to := from.route(st.model); to != nil {
			st.to = to
		}
		// Replacing Body is the http.MaxBytesReader idiom; the bytes sent
		// upstream are exactly the bytes read.
		r.Body = &bufferedBody{Reader: bytes.NewReader(body), data: body}
		r.ContentLength = int64(len(body))
	} else if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		// A body of unknown length streams through; the limit trips mid-way
		// and upstreamError turns it into 413. A known length was checked
		// above and the server enforces it.
		r.Body = http.MaxBytesReader(w, r.Body, p.maxBody)
	}
	p.forward(rec, w, r, st.to)
}

// forward hands the request to up's ReverseProxy, which writes to out; w is
// the server's own writer.
func (p *Proxy) forward(out, w http.ResponseWriter, r *http.Request, up *upstream) {
	// A server WriteTimeout meant for other routes must not cut long
	// streams (docs/design.md, section 7.2). Unsupported writers (recorders) are fine.
	rc := http.NewResponseController(w)
	_ = rc.SetWriteDeadline(time.Time{})
	// Without full duplex, the HTTP/1 server closes the request body as
	// soon as the response starts; a provider that starts streaming before
	// the transport has sent the last body byte then has its connection
	// closed under it, cutting the stream (golang/go#40747).
	_ = rc.EnableFullDuplex()

	up.rp.ServeHTTP(out, r)
}

// serveMetered hands a request whose key has a policy to metering.Serve,
// with the proxy's side of it (meteredHop).
func (p *Proxy) serveMetered(rec *responseRecorder, w http.ResponseWriter, r *http.Request, st *requestState, rest string, rm metering.RequestMeter) {
	// The hop holds a copy of st, so that st stays on ServeHTTP's stack
	// for the requests that are not metered; what routing learnt is
	// copied back, also when ReverseProxy aborts with a panic.
	h := &meteredHop{p: p, rec: rec, w: w, r: r, st: *st}
	defer func() { *st = h.st }()
	metering.Serve(rec, r, rest, rm, h)
}

// meteredHop is the proxy's side of a request that metering.Serve meters.
type meteredHop struct {
	p   *Proxy
	rec *responseRecorder
	w   http.ResponseWriter // the server's own
	r   *http.Request
	st  requestState
}

func (h *meteredHop) ReadBody() ([]byte, bool) {
	body, err := readBody(h.r, h.p.maxBody)
	if err != nil {
		h.p.bodyError(h.rec, h.r, err)
		return nil, false
	}
	return body, true
}

func (h *meteredHop) StreamBody() {
	if r := h.r; r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(h.w, r.Body, h.p.maxBody)
	}
}

func (h *meteredHop) Route(model string) *providers.Provider {
	h.st.model = model
	if to := h.st.from.route(model); to != nil {
		h.st.to = to
	}
	return h.st.to.provider
}

func (h *meteredHop) Forward(out http.ResponseWriter, body []byte) {
	if body != nil {
		h.r.Body = &bufferedBody{Reader: bytes.NewReader(body), data: body}
		h.r.ContentLength = int64(len(body))
	}
	h.p.forward(out, h.w, h.r, h.st.to)
}

// routeAllowed checks the request against the provider's routes: its
// decoded path and, when the client escaped it differently from the
// default, the escaped form the provider will receive.
func routeAllowed(prov *providers.Provider, r *http.Request, rest string) bool {
	rawRest := ""
	if r.URL.RawPath != "" {
		var ok bool
		if _, rawRest, ok = splitPath(r.URL.RawPath); !ok {
			return false // "/gateway/" itself escaped: nothing to check it against
		}
	}
	return prov.AllowsEscaped(r.Method, rest, rawRest)
}

func (up *upstream) route(model string) *upstream {
	if model == "" {
		return nil
	}
	for _, r := range up.routes {
		// Patterns were validated at load time, so the error is always nil.
		if ok, _ := path.Match(r.pattern, model); ok {
			return r.to
		}
	}
	return nil
}

// finish counts and logs a request once it is done.
func (p *Proxy) finish(rec *responseRecorder, r *http.Request, st *requestState, start time.Time, aborted bool) {
	status := rec.status
	if status == 0 {
		status = http.StatusOK // what the server sends for an empty response
	}
	provider := ""
	if st.to != nil {
		provider = st.to.name
	}
	if p.metrics != nil {
		p.metrics.Requests.WithLabelValues(provider, statusLabel(status)).Inc()
	}

	ctx := r.Context()
	if !p.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs,
		slog.String("provider", provider),
		slog.String("method", r.Method),
		slog.String("path", r.URL.Path), // no query: some providers take keys there
		slog.Int("status", status),
		slog.Duration("duration", time.Since(start)),
	)
	if st.from != nil && st.from != st.to {
		attrs = append(attrs, slog.String("routedFrom", st.from.name))
	}
	if st.model != "" {
		attrs = append(attrs, slog.String("model", st.model))
	}
	if aborted {
		attrs = append(attrs, slog.Bool("aborted", true))
	}
	if p.logAttrs != nil {
		attrs = append(attrs, p.logAttrs(r)...)
	}
	p.log.LogAttrs(ctx, slog.LevelDebug, "Proxied request", attrs...)
}
