package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"

	"github.com/codevector/codevector/gateway/httperr"
)

// rewrite builds the outgoing request for up. ReverseProxy has already
// removed hop-by-hop headers and Forwarded/X-Forwarded-{For,Host,Proto}.
func (p *Proxy) rewrite(up *upstream) func(*httputil.ProxyRequest) {
	prov := up.provider
	return func(pr *httputil.ProxyRequest) {
		in, out := pr.In, pr.Out
		// The same rest of the path whichever provider serves: a routed
		// request keeps the path of the URL's provider.
		_, out.URL.Path, _ = splitPath(in.URL.Path)
		out.URL.RawPath = ""
		if in.URL.RawPath != "" {
			// Kept only if it still encodes Path; url.URL checks that.
			_, out.URL.RawPath, _ = splitPath(in.URL.RawPath)
		}
		pr.SetURL(prov.BaseURL)

		h := out.Header
		for k := range h {
			if isClientOnlyHeader(k) {
				delete(h, k)
			}
		}
		pr.SetXForwarded()

		if c := prov.Credential; c != nil {
			v, err := c.HeaderValues()
			if err != nil {
				p.log.Warn("Failed to re-read credential file, kept the previous value",
					"provider", prov.Name, "error", err)
			}
			h[c.Header] = v
		}
		for k, v := range prov.Headers {
			// Shared, read-only slices: see Credential.current.
			h[k] = v
		}
		if b, ok := in.Body.(*bufferedBody); ok {
			// Lets the transport retry on a dead pooled connection.
			out.GetBody = b.replay
		}
	}
}

// isClientOnlyHeader reports headers that must not reach a provider: the
// client's gateway key (Authorization, x-api-key, and the key headers of
// other providers' SDKs), the gateway's cookies, forwarding headers the
// client could forge (X-Forwarded-User and friends; SetXForwarded sets the
// standard ones afresh), and the headers that pick which organization or
// project of the provider account a request runs as: only the providers
// file's headers: may set those.
//
// Anthropic has no such header: an API key belongs to one workspace, and
// anthropic-version and anthropic-beta choose API behaviour, not an
// account, so they pass through (headers: still overrides them).
func isClientOnlyHeader(k string) bool {
	switch {
	case strings.EqualFold(k, "Authorization"),
		strings.EqualFold(k, "X-Api-Key"),
		strings.EqualFold(k, "Api-Key"),
		strings.EqualFold(k, "X-Goog-Api-Key"),
		strings.EqualFold(k, "Cookie"),
		strings.EqualFold(k, "X-Real-Ip"),
		strings.EqualFold(k, "Openai-Organization"),
		strings.EqualFold(k, "Openai-Project"),
		len(k) >= len("X-Forwarded-") && strings.EqualFold(k[:len("X-Forwarded-")], "X-Forwarded-"):
		return true
	}
	return false
}

// modifyResponse drops provider cookies: the gateway shares its host with
// the console, and a provider's cookies mean nothing to API clients.
func modifyResponse(resp *http.Response) error {
	resp.Header.Del("Set-Cookie")
	return nil
}

// upstreamError is the ReverseProxy ErrorHandler: no response has been
// written yet when it runs.
func (p *Proxy) upstreamError(up *upstream) func(http.ResponseWriter, *http.Request, error) {
	return func(w http.ResponseWriter, r *http.Request, err error) {
		rec := recorderOf(w)
		var tooLarge *http.MaxBytesError
		switch {
		case errors.Is(r.Context().Err(), context.Canceled):
			p.writeCancelled(w, rec, r)
		case errors.As(err, &tooLarge):
			p.writeTooLarge(w)
		case isTimeout(err) || errors.Is(r.Context().Err(), context.DeadlineExceeded):
			p.log.Warn("Upstream timed out", "provider", up.name, "error", err)
			httperr.Write(w, http.StatusGatewayTimeout, httperr.TypeUpstream, "upstream_timeout",
				fmt.Sprintf("provider %s did not respond in time", up.name))
		default:
			p.log.Warn("Failed to reach upstream", "provider", up.name, "error", err)
			httperr.Write(w, http.StatusBadGateway, httperr.TypeUpstream, "upstream_unavailable",
				fmt.Sprintf("provider %s is unavailable", up.name))
		}
	}
}

// recorderOf returns the responseRecorder under w: w itself, or under the
// writers (metering's) that wrap it.
func recorderOf(w http.ResponseWriter) *responseRecorder {
	for {
		switch v := w.(type) {
		case *responseRecorder:
			return v
		case interface{ Unwrap() http.ResponseWriter }:
			w = v.Unwrap()
		default:
			return nil
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

func (p *Proxy) writeTooLarge(w http.ResponseWriter) {
	httperr.Write(w, http.StatusRequestEntityTooLarge, httperr.TypeInvalidRequest, "request_too_large",
		fmt.Sprintf("request body is larger than %d bytes", p.maxBody))
}

// writeCancelled answers a request whose context was cancelled. Usually the
// client went away and nobody reads the answer, which is why it is counted
// as 499 and not logged as an error. If a middleware cancelled it instead
// (say, on key revocation, with the reason as the cause), the client gets
// that reason rather than an empty 200.
func (p *Proxy) writeCancelled(w http.ResponseWriter, rec *responseRecorder, r *http.Request) {
	msg := "request cancelled"
	if cause := context.Cause(r.Context()); cause != nil && cause != context.Canceled {
		msg += ": " + cause.Error()
	}
	httperr.Write(w, http.StatusBadGateway, httperr.TypeUpstream, "request_cancelled", msg)
	if rec != nil {
		rec.status = StatusClientClosedRequest
	}
}

func (p *Proxy) bodyError(rec *responseRecorder, r *http.Request, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		p.writeTooLarge(rec)
	case errors.Is(r.Context().Err(), context.Canceled):
		p.writeCancelled(rec, rec, r)
	default:
		httperr.Write(rec, http.StatusBadRequest, httperr.TypeInvalidRequest, "invalid_body",
			"failed to read the request body")
	}
}
