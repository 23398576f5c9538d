// Package console serves the web console at /api-keys and the JSON API
// behind it at /api/v1/apikeys: list, create (with the key shown once) and
// revoke. A request passes security headers -> identity -> CSRF guard (state
// changes only) -> handler. Lists come from the gateway's watch cache and
// span every namespace it watches; writes and the one-shot reveal go to the
// API server, in the console namespace only.
package console

import (
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/web"
)

// AuthMode is how the console learns who its user is.
type AuthMode string

const (
	// AuthHeader trusts X-Forwarded-User / -Email / -Groups from a sign-in
	// proxy (the oauth2-proxy convention), and only from ProxyCIDRs.
	AuthHeader AuthMode = "header"
	// AuthDev signs everyone in as DevUser. For `codevector dev` only.
	AuthDev AuthMode = "dev"
)

// DevUser is the fixed user of AuthDev.
const DevUser = "dev@codevector.local"

// DefaultCreateTimeout is how long a create waits for the controller.
const DefaultCreateTimeout = 10 * time.Second

// Options configure the console; zero values mean the defaults.
type Options struct {
	// Auth is AuthHeader (default) or AuthDev.
	Auth AuthMode
	// Namespace holds the keys the console creates and revokes. Required.
	// Lists show a user's keys from every namespace the reader caches;
	// those elsewhere are revoked with kubectl.
	Namespace string
	// ProxyCIDRs are the peers whose X-Forwarded-* headers are believed in
	// header mode. Default: loopback only (a proxy in the same pod).
	ProxyCIDRs []netip.Prefix
	// AdminGroup members see and revoke everyone's keys (never a key
	// itself). Default gatewayv1alpha1.DefaultAdminGroup.
	AdminGroup string
	// DevGroups are the dev user's groups in AuthDev; include AdminGroup to
	// try the admin view.
	DevGroups []string
	// CSRFKey signs CSRF tokens, at least 32 bytes. Replicas behind one load
	// balancer must share it, or a token from one is refused by another.
	// Empty: a random key per process (fine for a single replica).
	CSRFKey []byte
	// CreateTimeout bounds the wait for the controller to issue a key.
	CreateTimeout time.Duration
	Logger        *slog.Logger

	// MaxKeysPerUser is how many keys a user may hold that are not
	// Revoked, Expired or Failed, counted across every namespace the
	// gateway watches, before the console refuses to create another
	// (quota.go). Zero means DefaultMaxKeysPerUser; negative, no limit.
	MaxKeysPerUser int
}

// DefaultProxyCIDRs trusts only a sign-in proxy on the same host or pod.
var DefaultProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}

// ParseAuthMode reads --console-auth.
func ParseAuthMode(s string) (AuthMode, error) {
	switch m := AuthMode(strings.TrimSpace(s)); m {
	case AuthHeader, AuthDev:
		return m, nil
	default:
		return "", fmt.Errorf("--console-auth %q: want header (behind a sign-in proxy) or dev (local development only)", s)
	}
}

// ParseCIDRs reads a comma-separated list such as --console-proxy-cidrs.
// A bare address means just that address.
func ParseCIDRs(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			a, err := netip.ParseAddr(part)
			if err != nil {
				return nil, fmt.Errorf("proxy CIDR %q: not an address or CIDR", part)
			}
			out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(part)
		if err != nil {
			return nil, fmt.Errorf("proxy CIDR %q: %w", part, err)
		}
		out = append(out, p.Masked())
	}
	if out == nil {
		out = []netip.Prefix{} // an empty list trusts no proxy, rather than the default
	}
	return out, nil
}

// Console is the console's HTTP surface.
type Console struct {
	opts        Options
	log         *slog.Logger
	keys        Keys          // the gateway's key index: every list and wait
	writer      client.Client // the API server itself: create, revoke, reveal
	csrf        *csrfSigner
	crossOrigin *http.CrossOriginProtection
	page        *template.Template
	unauth      *template.Template
	handler     http.Handler
}

// Keys is what the console reads keys from: the gateway's key index, which
// its watches keep current.
type Keys interface {
	APIKey(types.NamespacedName) *keyindex.APIKeyFacts
	APIKeys() []*keyindex.APIKeyFacts
}

// New builds the console. keys should be the gateway's key index (it must
// watch APIKeys in o.Namespace; lists show what it watches elsewhere too);
// writer must talk to the API server directly, because the one-shot reveal
// cannot be read from a cache.
func New(keys Keys, writer client.Client, o Options) (*Console, error) {
	if keys == nil || writer == nil {
		return nil, errors.New("console: a key index and a writer are required")
	}
	if o.Auth == "" {
		o.Auth = AuthHeader
	}
	if _, err := ParseAuthMode(string(o.Auth)); err != nil {
		return nil, err
	}
	if o.Namespace == "" {
		return nil, errors.New("console: no namespace for console keys")
	}
	if o.ProxyCIDRs == nil {
		o.ProxyCIDRs = DefaultProxyCIDRs
	}
	if o.AdminGroup == "" {
		o.AdminGroup = gatewayv1alpha1.DefaultAdminGroup
	}
	if o.CreateTimeout <= 0 {
		o.CreateTimeout = DefaultCreateTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	signer, err := newCSRFSigner(o.CSRFKey)
	if err != nil {
		return nil, err
	}
	c := &Console{opts: o, log: o.Logger, keys: keys, writer: writer, csrf: signer, crossOrigin: http.NewCrossOriginProtection()}
	if c.page, err = web.Templates(viewFuncs, templateFS, "templates/api_keys.html"); err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	if c.unauth, err = web.Templates(viewFuncs, templateFS, "templates/unauthorized.html"); err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /api-keys", c.servePage)
	mux.HandleFunc("GET /api/v1/apikeys", c.serveList)
	mux.HandleFunc("POST /api/v1/apikeys", c.serveCreate)
	mux.HandleFunc("POST /api/v1/apikeys/{name}/revoke", c.serveRevoke)
	mux.HandleFunc("/api/v1/apikeys/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &apiError{http.StatusNotFound, "not_found", "No such endpoint. The console API has GET and POST /api/v1/apikeys and POST /api/v1/apikeys/{name}/revoke."})
	})
	c.handler = web.SecureHeaders(noStore(c.identify(c.guard(mux))))

	if o.Auth == AuthDev {
		c.log.Warn("Console runs in dev mode: every visitor is signed in as the dev user; never expose it", "user", DevUser, "groups", o.DevGroups)
	}
	return c, nil
}

// ServeHTTP serves /api-keys and /api/v1/apikeys...
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.handler.ServeHTTP(w, r) }

// noStore keeps every console response out of caches: pages carry a CSRF
// token and a user's key list, and the create response carries a key.
func noStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Vary", "Cookie, Authorization, X-Forwarded-User, X-Forwarded-Email, X-Forwarded-Groups")
		next.ServeHTTP(w, r)
	})
}

// isAPI tells API requests (JSON errors) from page requests (HTML errors).
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
