package server

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/providers"
)

// One router serves everything: each route's methods, what other methods
// and unknown paths get, and that the security headers, no-store and the
// identity check come before a console 404 or 405. The "csrf" cases (dev
// mode) carry a valid token and JSON, so the console's guard lets them
// reach routing.
func TestRouting(t *testing.T) {
	modes := map[string]console.Options{
		"dev":    {Auth: console.AuthDev},
		"header": {Auth: console.AuthHeader}, // no proxy configured: nobody has an identity
		"oidc": {Auth: console.AuthOIDC, OIDC: console.OIDCOptions{
			IssuerURL: "http://127.0.0.1:1", ClientID: "c", ClientSecret: "s", RedirectURL: "http://localhost/oauth2/callback",
		}},
	}
	cases := []struct{ mode, method, path, want string }{
		{"dev", "GET", "/", "302 location=/api-keys text/html"},
		{"dev", "POST", "/", "302 location=/api-keys"},
		{"dev", "GET", "/x", "404 application/json"}, // says which /gateway/ URL was meant
		{"dev", "POST", "/healthz", "200 text/plain"},
		{"dev", "GET", "/metrics", "404 application/json"}, // on the metrics listener only
		{"dev", "GET", "/gateway/openai/v1/models", "401 application/json"},
		{"dev", "GET", "//api-keys", "301 location=http://localhost/api-keys"},
		{"dev", "GET", "/docs/../api-keys", "301 location=http://localhost/api-keys"},

		// The console, dev mode: everyone is signed in.
		{"dev", "GET", "/api-keys", "200 csp cache=no-store text/html"},
		{"dev", "HEAD", "/api-keys", "200 csp cache=no-store text/html"},
		{"dev", "OPTIONS", "/api-keys", "405 allow=GET, HEAD csp cache=no-store text/plain"},
		{"dev", "POST", "/api-keys", "415 csp cache=no-store application/json"}, // the guard first
		{"dev", "POST csrf", "/api-keys", "405 allow=GET, HEAD csp cache=no-store text/plain"},
		{"dev", "DELETE csrf", "/api-keys", "405 allow=GET, HEAD csp cache=no-store text/plain"},
		{"dev", "GET", "/api-keys/x", "404 csp cache=no-store text/plain"},
		{"dev", "GET", "/api-keysx", "404 csp cache=no-store text/plain"},
		{"dev", "GET", "/api/v1/apikeys", "200 csp cache=no-store application/json"},
		{"dev", "POST csrf", "/api/v1/apikeys", "400 csp cache=no-store application/json"}, // the body is not JSON
		{"dev", "PUT csrf", "/api/v1/apikeys", "404 csp cache=no-store application/json"},
		{"dev", "OPTIONS", "/api/v1/apikeys", "404 csp cache=no-store application/json"},
		{"dev", "GET", "/api/v1/apikeys/", "404 csp cache=no-store application/json"},
		{"dev", "POST csrf", "/api/v1/apikeys/foo/revoke", "400 csp cache=no-store application/json"},
		{"dev", "GET", "/api/v1/apikeys/foo/revoke", "404 csp cache=no-store application/json"},
		{"dev", "POST csrf", "/api/v1/apikeys/foo/bar/revoke", "404 csp cache=no-store application/json"},
		{"dev", "GET", "/api/v1/apikeysx", "404 csp cache=no-store text/plain"},
		{"dev", "GET", "/api/v1", "404 application/json"},
		{"dev", "GET", "/oauth2", "404 application/json"},
		{"dev", "GET", "/oauth2/sign_in", "404 csp cache=no-store text/plain"},
		{"dev", "POST csrf", "/oauth2/sign_out", "404 csp cache=no-store text/plain"},

		// The docs and the assets.
		{"dev", "GET", "/docs", "302 location=/docs/quickstart csp text/html"},
		{"dev", "GET", "/docs/", "302 location=/docs/quickstart csp text/html"},
		{"dev", "HEAD", "/docs/quickstart", "200 csp cache=private, max-age=300 text/html"},
		{"dev", "GET", "/docs/api-keys", "200 csp cache=private, max-age=300 text/html"},
		{"dev", "POST", "/docs", "404 csp cache=private, max-age=300 text/html"},
		{"dev", "POST", "/docs/quickstart", "404 csp cache=private, max-age=300 text/html"},
		{"dev", "GET", "/docs/nope", "404 csp cache=private, max-age=300 text/html"},
		{"dev", "GET", "/docs/a/b", "404 csp cache=private, max-age=300 text/html"},
		{"dev", "GET", "/docsx", "404 csp text/plain"},
		{"dev", "GET", "/static/console.js", "200 cache=no-cache text/javascript"},
		{"dev", "POST", "/static/console.js", "405 allow=GET, HEAD text/plain"},
		{"dev", "GET", "/static/nope", "404 text/plain"},
		{"dev", "GET", "/static", "404 application/json"},

		// Without an identity, every console path is 401 first.
		{"header", "GET", "/api-keys", "401 csp cache=no-store text/html"},
		{"header", "PUT", "/api-keys", "401 csp cache=no-store text/html"},
		{"header", "GET", "/api-keys/x", "401 csp cache=no-store text/html"},
		{"header", "PUT", "/api/v1/apikeys", "401 csp cache=no-store application/json"},
		{"header", "GET", "/api/v1/apikeys/foo/revoke", "401 csp cache=no-store application/json"},
		{"header", "GET", "/oauth2/sign_in", "401 csp cache=no-store text/html"},
		{"header", "GET", "/docs/quickstart", "200 csp cache=private, max-age=300 text/html"},

		// OIDC: the sign-in routes come before identity, for their methods only.
		{"oidc", "GET", "/api-keys", "302 location=/oauth2/sign_in?rd=%2Fapi-keys csp cache=no-store text/html"},
		{"oidc", "HEAD", "/api-keys", "401 csp cache=no-store text/html"},
		{"oidc", "GET", "/api/v1/apikeys", "401 csp cache=no-store application/json"},
		{"oidc", "GET", "/oauth2/sign_in", "503 csp cache=no-store text/html"}, // the provider is unreachable
		{"oidc", "POST", "/oauth2/sign_in", "401 csp cache=no-store text/html"},
		{"oidc", "GET", "/oauth2/callback", "400 csp cache=no-store text/html"},
		{"oidc", "PUT", "/oauth2/callback", "401 csp cache=no-store text/html"},
		{"oidc", "GET", "/oauth2/sign_out", "200 csp cache=no-store text/html"},
		{"oidc", "POST", "/oauth2/sign_out", "303 location=/oauth2/sign_out csp cache=no-store"},
		{"oidc", "DELETE", "/oauth2/sign_out", "401 csp cache=no-store text/html"},
		{"oidc", "GET", "/oauth2/x", "302 location=/oauth2/sign_in?rd=%2Foauth2%2Fx csp cache=no-store text/html"},
		{"oidc", "GET", "/oauth2", "404 application/json"},
	}

	handlers := map[string]http.Handler{}
	for name, o := range modes {
		handlers[name] = routingGateway(t, o)
	}
	// The dev user's CSRF token, from the page.
	w := httptest.NewRecorder()
	handlers["dev"].ServeHTTP(w, httptest.NewRequest(http.MethodGet, "http://localhost/api-keys", nil))
	m := csrfMeta.FindStringSubmatch(w.Body.String())
	if m == nil {
		t.Fatalf("no CSRF token on the console page:\n%s", w.Body)
	}
	token := m[1]

	for _, c := range cases {
		method, withToken := strings.CutSuffix(c.method, " csrf")
		var header http.Header
		if withToken {
			header = http.Header{"Content-Type": {"application/json"}, "X-Csrf-Token": {token}}
		}
		got, requestID := routeOutcome(handlers[c.mode], method, c.path, header)
		if got != c.want {
			t.Errorf("%s: %s %s = %q, want %q", c.mode, c.method, c.path, got, c.want)
		}
		if requestID == "" {
			t.Errorf("%s: %s %s has no %s: the middleware chain was skipped", c.mode, c.method, c.path, requestIDHeader)
		}
	}
}

// routingGateway is a gateway that is never run: its router answers every
// request that needs neither the API server nor a provider.
func routingGateway(t *testing.T, o console.Options) http.Handler {
	t.Helper()
	ps, err := providers.ParseProviders([]byte("providers:\n  openai:\n    baseURL: http://127.0.0.1:1\n"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	g, err := New(&rest.Config{Host: "http://127.0.0.1:1"}, Options{
		Providers: ps,
		Console:   o,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g.Handler()
}

var csrfMeta = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// routeOutcome is what a request gets: status, and the headers that say
// where it went; and its request ID.
func routeOutcome(h http.Handler, method, path string, header http.Header) (outcome, requestID string) {
	r := httptest.NewRequest(method, "http://localhost"+path, strings.NewReader("x"))
	r.RemoteAddr = "127.0.0.1:5555"
	for k, v := range header {
		r.Header[k] = v
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	out := fmt.Sprint(w.Code)
	if a := w.Header().Get("Allow"); a != "" {
		out += " allow=" + a
	}
	if l := w.Header().Get("Location"); l != "" {
		out += " location=" + l
	}
	if w.Header().Get("Content-Security-Policy") != "" {
		out += " csp"
	}
	if c := w.Header().Get("Cache-Control"); c != "" {
		out += " cache=" + c
	}
	if ct, _, _ := strings.Cut(w.Header().Get("Content-Type"), ";"); ct != "" {
		out += " " + ct
	}
	return out, w.Header().Get(requestIDHeader)
}
