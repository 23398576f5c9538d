package server

import (
	"cmp"
	"io"
	"net/http"
	"time"
)

// Timeouts bound how long a client may take to send a request and how long
// an idle connection is kept. Zero fields take DefaultTimeouts.
type Timeouts struct {
	// ReadHeader: time to send the request line and headers.
	ReadHeader time.Duration
	// Body: time to send the request body, counted from the end of the
	// headers, on every route. Only the upload is bounded; the response
	// may stream for as long as the provider streams. A handler that
	// answers without reading the body (a probe, a refusal) leaves the
	// deadline armed, so a body that never comes closes the connection
	// then too.
	Body time.Duration
	// Idle: how long a keep-alive connection may wait for its next request.
	Idle time.Duration
}

// DefaultTimeouts suit chat completions: small requests, long answers.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Body: 60 * time.Second, Idle: 90 * time.Second}

// DefaultMaxConnsPerClient is Options.MaxConnsPerClient's default: far
// more than one client needs, far fewer than it takes to exhaust the
// gateway's memory or file descriptors.
const DefaultMaxConnsPerClient = 256

func (t Timeouts) withDefaults() Timeouts {
	// Zero is the only value to replace: the flags take positive
	// durations only.
	t.ReadHeader = cmp.Or(t.ReadHeader, DefaultTimeouts.ReadHeader)
	t.Body = cmp.Or(t.Body, DefaultTimeouts.Body)
	t.Idle = cmp.Or(t.Idle, DefaultTimeouts.Idle)
	return t
}

// withBodyDeadline gives the request body a read deadline and lifts it once
// the body has been read to the end. http.Server.ReadTimeout cannot do
// this: it stays armed while the response streams, and when it fires the
// server cancels the request, cutting long completions.
func withBodyDeadline(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			if http.NewResponseController(w).SetReadDeadline(time.Now().Add(d)) == nil {
				r.Body = &deadlineBody{ReadCloser: r.Body, w: w}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts its request's read deadline at the end of the body.
// It is the one allocation the deadline costs a request (no controller or
// closure kept), since every proxied request has a body.
type deadlineBody struct {
	io.ReadCloser
	w      http.ResponseWriter
	lifted bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.lifted {
		b.lifted = true
		_ = http.NewResponseController(b.w).SetReadDeadline(time.Time{})
	}
	return n, err
}
