package auth

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"
	"time"

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
		e, f := a.Authenticate(r.Context(), raw, a.clientAddress(r))
		if f != nil {
			a.writeRefusal(w, r, f)
			return
		}
		if a.afterAuthenticate != nil {
			a.afterAuthenticate()
		}
		ctx, done := a.track(r.Context(), e)
		defer done()
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

// track registers a request as in flight for its key until done is called.
func (a *Authenticator) track(parent context.Context, e *keyindex.Entry) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	stopDeadline := func() bool { return false }
	if !e.ExpiresAt.IsZero() {
		t := time.AfterFunc(time.Until(e.ExpiresAt), func() { cancel(ErrKeyExpired) })
		stopDeadline = t.Stop
	}
	req := &inflightRequest{cancel: cancel}
	a.inflight.mu.Lock()
	set := a.inflight.byKey[e.KeyID]
	if set == nil {
		set = map[*inflightRequest]struct{}{}
		a.inflight.byKey[e.KeyID] = set
	}
	set[req] = struct{}{}
	a.inflight.mu.Unlock()
	// A change to the index between Authenticate's lookup and the
	// registration above found no request to end, and nothing will repeat
	// it. Look again now: any change after this lookup finds the request.
	if cause := a.endedSince(e); cause != nil {
		cancel(cause)
		a.metrics.streamsEnded.Inc()
	}
	return ctx, func() {
		stopDeadline()
		a.inflight.mu.Lock()
		delete(set, req)
		if len(set) == 0 {
			delete(a.inflight.byKey, e.KeyID)
		}
		a.inflight.mu.Unlock()
		cancel(nil)
	}
}

// endedSince returns why a request authenticated with e must end, judging
// by the index now, or nil if the key still authenticates it: the same
// APIKey, usable, as e or as a newer version of it (a new lastUsedAt, a
// replaced hash Secret).
func (a *Authenticator) endedSince(e *keyindex.Entry) error {
	cur := a.index.Lookup(e.KeyID)
	if cur == e {
		// Unchanged, so only time can have ended it; track's deadline
		// covers expiry.
		return nil
	}
	switch reason := cur.Usable(a.now()); {
	case reason == keyindex.ReasonExpired:
		return ErrKeyExpired
	case reason != "", cur.UID != e.UID:
		return ErrKeyRevoked
	}
	return nil
}

// OnIndexChange ends the in-flight requests of keyID if the key can no
// longer be used. The key index calls it on every change.
func (a *Authenticator) OnIndexChange(keyID string) {
	a.inflight.mu.Lock()
	set := a.inflight.byKey[keyID]
	if len(set) == 0 {
		a.inflight.mu.Unlock()
		return
	}
	reqs := make([]*inflightRequest, 0, len(set))
	for r := range set {
		reqs = append(reqs, r)
	}
	a.inflight.mu.Unlock()

	reason := a.index.Lookup(keyID).Usable(a.now())
	if reason == "" {
		return
	}
	cause := ErrKeyRevoked
	if reason == keyindex.ReasonExpired {
		cause = ErrKeyExpired
	}
	for _, r := range reqs {
		r.cancel(cause)
	}
	a.metrics.streamsEnded.Add(float64(len(reqs)))
}

// clientAddress is the unit of per-client limits: the client's IPv4
// address, or its IPv6 /64 (one host usually holds a whole /64, and could
// otherwise make a fresh bucket per request). The client is the peer,
// unless the peer is a trusted proxy: then it is the rightmost address of
// X-Forwarded-For that is not a trusted proxy (the entries left of it were
// written by the client and prove nothing).
func (a *Authenticator) clientAddress(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if a.isTrustedProxy(addr) {
		addr = a.forwardedClient(r.Header.Values("X-Forwarded-For"), addr)
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// forwardedClient walks X-Forwarded-For from the right, past trusted
// proxies, to the first address that is not one. A hop that does not parse
// ends the walk at the last proxy that was trusted.
func (a *Authenticator) forwardedClient(headers []string, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(headers[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return client
			}
			client = hop.Unmap()
			if !a.isTrustedProxy(client) {
				return client
			}
		}
	}
	return client
}

func (a *Authenticator) isTrustedProxy(addr netip.Addr) bool {
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
