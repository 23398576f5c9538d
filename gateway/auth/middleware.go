package auth

import (
	"context"
	"errors"
	"net/http"

	"github.com/codevector/codevector/gateway/httperr"
	"github.com/codevector/codevector/gateway/keyindex"
)

type identityKey struct{}

// FromContext returns the key entry a request was authenticated with, or nil.
func FromContext(ctx context.Context) *keyindex.Entry {
	e, _ := ctx.Value(identityKey{}).(*keyindex.Entry)
	return e
}

var (
	// ErrKeyRevoked ends a request whose key was revoked while it ran.
	ErrKeyRevoked = errors.New("API key revoked during the request")
	// ErrKeyExpired ends a request whose key expired while it ran.
	ErrKeyExpired = errors.New("API key expired during the request")
)

// Middleware lets through only requests with a usable key, with the key's
// entry in the request context. A request whose key is revoked or expires
// while it is served (a long stream) has its context cancelled, which ends
// the upstream request and the response within the watch latency.
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, err := ExtractKey(r.Header)
		if err != nil {
			f := failMissing
			if !errors.Is(err, errNoKey) {
				f = failInvalid("malformed")
			}
			a.metrics.observe(f.Reason, 0)
			a.writeRefusal(w, r, f)
			return
		}
		e, f := a.authenticateFrom(r.Context(), raw, func() string { return a.clientAddress(r) })
		if f != nil {
			a.writeRefusal(w, r, f)
			return
		}
		if a.afterAuthenticate != nil {
			a.afterAuthenticate()
		}
		ctx, req := a.track(r.Context(), e)
		defer req.done()
		next.ServeHTTP(w, r.WithContext(context.WithValue(ctx, identityKey{}, e)))
	})
}

// WriteFailure writes the OpenAI-style error of f.
func WriteFailure(w http.ResponseWriter, f *Failure) {
	if f.Status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="codevector"`)
	}
	if f.Status == http.StatusTooManyRequests {
		w.Header().Set("Retry-After", "60")
	}
	typ := "invalid_request_error"
	if f.Status >= 500 {
		typ = "api_error"
	}
	httperr.Write(w, f.Status, typ, f.Code, f.Message)
}
