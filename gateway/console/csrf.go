package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// csrfHeader carries the token. Browsers do not let another origin set a
// custom header without a CORS preflight, which the console never grants.
const csrfHeader = "X-CSRF-Token"

// csrfMaxAge bounds how long a token from a page stays good; the page's
// script fetches the page again after every change, so an open tab keeps
// a fresh one.
const csrfMaxAge = 12 * time.Hour

// csrfSigner issues and checks synchronizer tokens bound to the user:
// "<unix seconds>.<HMAC-SHA256(key, user, time)>". A token taken from one
// user's page is useless for another user, and it expires.
type csrfSigner struct {
	key []byte
	now func() time.Time
}

// newCSRFSigner signs with key; nil means a random key (unit tests).
func newCSRFSigner(key []byte) (*csrfSigner, error) {
	if len(key) == 0 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	if len(key) < 32 {
		return nil, errors.New("console: the CSRF key must be at least 32 bytes")
	}
	return &csrfSigner{key: key, now: time.Now}, nil
}

func (s *csrfSigner) mac(user string, issued int64) string {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte("codevector-console-csrf-v1\x00"))
	m.Write([]byte(user))
	m.Write([]byte{0})
	m.Write([]byte(strconv.FormatInt(issued, 10)))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Token issues a token for user.
func (s *csrfSigner) Token(user string) string {
	issued := s.now().Unix()
	return strconv.FormatInt(issued, 10) + "." + s.mac(user, issued)
}

// Valid tells whether token was issued to user by this key and is still fresh.
func (s *csrfSigner) Valid(token, user string) bool {
	ts, sig, ok := strings.Cut(token, ".")
	if !ok {
		return false
	}
	issued, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return false
	}
	age := s.now().Sub(time.Unix(issued, 0))
	if age > csrfMaxAge || age < -time.Minute {
		return false
	}
	return hmac.Equal([]byte(sig), []byte(s.mac(user, issued)))
}

// guard protects state changes three ways, each enough against a classic
// cross-site form post on its own: the browser's Sec-Fetch-Site / Origin
// must say same origin; the body must be declared JSON (a cross-origin form
// cannot send that without a preflight); and the user's CSRF token must be
// in the X-CSRF-Token header.
func (c *Console) guard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if err := c.crossOrigin.Check(r); err != nil {
			c.log.Debug("Refused cross-origin console request", "path", r.URL.Path, "origin", r.Header.Get("Origin"), "secFetchSite", r.Header.Get("Sec-Fetch-Site"))
			writeError(w, &apiError{http.StatusForbidden, "cross_origin", "The console refuses changes requested from another website. Open the console itself and try again."})
			return
		}
		if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
			writeError(w, &apiError{http.StatusUnsupportedMediaType, "unsupported_media_type", "Send the request body as JSON, with Content-Type: application/json."})
			return
		}
		// identify runs first, so there is always an identity here.
		id := identityFrom(r.Context())
		if !c.csrf.Valid(r.Header.Get(csrfHeader), id.User) {
			c.log.Debug("Refused console request without a valid CSRF token", "path", r.URL.Path, "user", id.User)
			writeError(w, &apiError{http.StatusForbidden, "csrf_failed", "The page's security token is missing or out of date. Reload the page and try again."})
			return
		}
		next.ServeHTTP(w, r)
	})
}
