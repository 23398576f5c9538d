// Package console serves the web console at /api-keys and the JSON API
// behind it at /api/v1/apikeys: list (with each key's usage, models, limits
// and budget), create (with the key shown once), revoke, and for admins
// changing a key's models, limits and budget (policy.go). A request passes security headers -> identity -> CSRF guard (state
// changes only) -> handler. Identity comes from a fixed dev user, from a
// sign-in proxy's headers, or from the console's own OpenID Connect sign-in
// (/oauth2/..., oidc.go), which keeps it in a sealed session cookie. Lists come from the gateway's watch cache and
// span every namespace it watches; writes and the one-shot reveal go to the
// API server, in the console namespace only.
package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/gateway/web"
)

// AuthMode is how the console learns who its user is.
type AuthMode string

const (
	// AuthHeader trusts a sign-in proxy's identity headers (UserHeader,
	// and GroupsHeader when set), and only from ProxyCIDRs.
	AuthHeader AuthMode = "header"
	// AuthOIDC signs people in with an OpenID Connect provider: the
	// authorization-code flow with PKCE, then a sealed session cookie.
	// Identity headers mean nothing in this mode.
	AuthOIDC AuthMode = "oidc"
	// AuthDev signs everyone in as DevUser. For `codevector dev` only.
	AuthDev AuthMode = "dev"
)

// DefaultUserHeader is the header mode's user header: oauth2-proxy's
// X-Forwarded-User.
const DefaultUserHeader = "X-Forwarded-User"

// DevUser is the fixed user of AuthDev. It is also the user of dev mode's
// kubeconfig (internal/devmode), so keys made in the console and with
// kubectl have the same owner; this is the name's one home.
const DevUser = "dev@codevector.local"

// DefaultCreateTimeout is how long a create waits for the controller.
const DefaultCreateTimeout = 10 * time.Second

// Options configure the console; zero values mean the defaults.
type Options struct {
	// Auth is AuthHeader (default), AuthOIDC or AuthDev.
	Auth AuthMode
	// Namespace holds the keys the console creates and revokes. Required.
	// Lists show a user's keys from every namespace the reader caches;
	// those elsewhere are revoked with kubectl.
	Namespace string
	// SystemNamespace holds the Leases the console reads and writes: the
	// gateway replicas' (a revoke waits on them, gateway/replicas), the
	// sign-outs and the create locks. Default the API's default system
	// namespace.
	SystemNamespace string
	// ConfirmTimeout bounds how long a revoke waits until every gateway
	// replica refuses the key. Default replicas.DefaultConfirmTimeout.
	ConfirmTimeout time.Duration
	// ProxyCIDRs are the peers whose identity headers are believed in
	// header mode. Default: none, so header mode refuses everyone until it
	// is told where its proxy is. Loopback is not special: `kubectl
	// port-forward` connects from 127.0.0.1 too, so trusting it would let
	// anyone with port-forward rights claim any user.
	ProxyCIDRs []netip.Prefix
	// UserHeader is the one header that names the user in header mode.
	// Default DefaultUserHeader. No other header overrides it, and a
	// request that carries it twice is refused.
	UserHeader string
	// GroupsHeader, when set, is the header with the user's groups
	// (comma-separated) in header mode. Empty: groups never come from
	// headers, so nobody is an admin in header mode; set it only when the
	// proxy always sets (or strips) it.
	GroupsHeader string
	// OIDC configures AuthOIDC.
	OIDC OIDCOptions
	// AdminGroup members see and revoke everyone's keys (never a key
	// itself). Default gatewayv1alpha1.DefaultAdminGroup.
	AdminGroup string
	// DevGroups are the dev user's groups in AuthDev; include AdminGroup to
	// try the admin view.
	DevGroups []string
	// CSRFKey is the console's secret (--console-csrf-key-file), at least
	// 32 bytes: it signs CSRF tokens, and the keys that seal session and
	// sign-in cookies are derived from it (HKDF, one key per use).
	// Replicas behind one load balancer must share it, or a token or a
	// session from one is refused by another. Empty: a random key per
	// process (fine for a single replica; sign-ins end with the process).
	CSRFKey []byte
	// Clock is the console's time: sessions, CSRF tokens, the expiry a TTL
	// gives, and which keys count as expired. Default clock.RealClock{}.
	Clock clock.PassiveClock
	// CreateTimeout bounds the wait for the controller to issue a key.
	CreateTimeout time.Duration
	Logger        *slog.Logger

	// Kubernetes is how the console shares state with the other replicas,
	// as Leases in SystemNamespace: sign-outs in OIDC mode (signouts.go)
	// and each user's create lock (createlock.go). Without it, both hold
	// on this replica only.
	Kubernetes kubernetes.Interface

	// MaxKeysPerUser is how many keys a user may hold that are not
	// Revoked, Expired or Failed, counted across every namespace the
	// gateway watches, before the console refuses to create another
	// (quota.go). Zero means DefaultMaxKeysPerUser; negative, no limit.
	MaxKeysPerUser int
}

// ParseAuthMode reads --console-auth.
func ParseAuthMode(s string) (AuthMode, error) {
	switch m := AuthMode(strings.TrimSpace(s)); m {
	case AuthHeader, AuthOIDC, AuthDev:
		return m, nil
	default:
		return "", fmt.Errorf("--console-auth %q: want oidc (the console signs people in with your identity provider), header (behind a sign-in proxy) or dev (local development only)", s)
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
	keys        Keys             // the gateway's key index: every list and wait
	writer      client.WithWatch // the API server itself: create, revoke, reveal; the replicas' Leases
	csrf        *csrfSigner
	oidc        *oidcLogin // AuthOIDC only
	now         func() time.Time
	crossOrigin *http.CrossOriginProtection
	// guardrailsCache holds what the create dialog shows of the
	// namespace's guardrails (guardrails.go).
	guardrailsCache guardrailsCache
	page            *template.Template
	unauth          *template.Template
	// creating holds, per user, a channel with room for one: the lock
	// that serialises that user's creates on this replica (lockCreates).
	creating sync.Map
}

// Keys is what the console reads keys from: the gateway's key index, which
// its watches keep current.
type Keys interface {
	APIKey(types.NamespacedName) *keyindex.APIKeyFacts
	APIKeys() []*keyindex.APIKeyFacts
	// Listed is closed once every key is in: a gateway that has just
	// started serves requests before it has listed every APIKey.
	Listed() <-chan struct{}
}

// New builds the console. keys should be the gateway's key index (it must
// watch APIKeys in o.Namespace; lists show what it watches elsewhere too);
// writer must talk to the API server directly, because the one-shot reveal
// cannot be read from a cache.
func New(keys Keys, writer client.WithWatch, o Options) (*Console, error) {
	if keys == nil || writer == nil {
		return nil, errors.New("console: a key index and a writer are required")
	}
	o.Auth = cmp.Or(o.Auth, AuthHeader)
	if _, err := ParseAuthMode(string(o.Auth)); err != nil {
		return nil, err
	}
	if o.Namespace == "" {
		return nil, errors.New("console: no namespace for console keys")
	}
	o.UserHeader = cmp.Or(o.UserHeader, DefaultUserHeader)
	o.UserHeader = http.CanonicalHeaderKey(strings.TrimSpace(o.UserHeader))
	o.GroupsHeader = http.CanonicalHeaderKey(strings.TrimSpace(o.GroupsHeader))
	if o.Auth == AuthHeader && o.GroupsHeader == o.UserHeader {
		return nil, fmt.Errorf("console: the user header and the groups header are both %s", o.UserHeader)
	}
	// The timeouts have no flags (only tests set them): zero is the only
	// value to replace.
	o.SystemNamespace = cmp.Or(o.SystemNamespace, gatewayv1alpha1.DefaultSystemNamespace)
	o.ConfirmTimeout = cmp.Or(o.ConfirmTimeout, replicas.DefaultConfirmTimeout)
	o.Clock = cmp.Or[clock.PassiveClock](o.Clock, clock.RealClock{})
	o.AdminGroup = cmp.Or(o.AdminGroup, gatewayv1alpha1.DefaultAdminGroup)
	o.CreateTimeout = cmp.Or(o.CreateTimeout, DefaultCreateTimeout)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	randomKey := len(o.CSRFKey) == 0
	if randomKey {
		o.CSRFKey = make([]byte, 32)
		if _, err := rand.Read(o.CSRFKey); err != nil {
			return nil, err
		}
	}
	signer, err := newCSRFSigner(o.CSRFKey)
	if err != nil {
		return nil, err
	}
	signer.now = o.Clock.Now
	c := &Console{opts: o, log: o.Logger, keys: keys, writer: writer, csrf: signer, now: o.Clock.Now, crossOrigin: http.NewCrossOriginProtection()}
	if o.Auth == AuthOIDC {
		if c.oidc, err = newOIDCLogin(o.OIDC, o.CSRFKey, o.AdminGroup, o.Clock.Now, o.Logger); err != nil {
			return nil, err
		}
		c.oidc.signOuts = newSignOuts(o.Kubernetes, o.SystemNamespace, c.oidc.opts.SessionLifetime, o.Clock.Now, o.Logger)
	}
	if c.page, err = web.Templates(viewFuncs, templateFS, "templates/api_keys.html"); err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}
	if c.unauth, err = web.Templates(viewFuncs, templateFS, "templates/unauthorized.html"); err != nil {
		return nil, fmt.Errorf("console templates: %w", err)
	}

	switch {
	case o.Auth == AuthDev:
		c.log.Warn("Console runs in dev mode: every visitor is signed in as the dev user; never expose it", "user", DevUser, "groups", o.DevGroups)
	case o.Auth == AuthHeader && len(o.ProxyCIDRs) == 0:
		c.log.Warn("Console trusts no sign-in proxy, so it refuses everyone; set --console-auth=oidc, or --console-proxy-cidrs to your proxy's addresses")
	case o.Auth == AuthHeader:
		c.log.Info("Console trusts a sign-in proxy's headers", "proxyCIDRs", o.ProxyCIDRs, "userHeader", o.UserHeader, "groupsHeader", o.GroupsHeader)
	case o.Auth == AuthOIDC && randomKey:
		c.log.Warn("Console sessions are sealed with a random key of this process: sign-ins end when it restarts and do not carry over to other replicas; give every replica the same --console-csrf-key-file")
	}
	return c, nil
}

// Run keeps what the console shares with the other replicas current (in
// OIDC mode, the sign-outs) until ctx ends.
func (c *Console) Run(ctx context.Context) {
	if c.oidc != nil && c.oidc.signOuts.client != nil {
		c.oidc.signOuts.run(ctx)
	}
}

// Synced is closed once the console knows every sign-out recorded by any
// replica: before that, a signed-out session copied elsewhere could be
// served again. Closed at once without OIDC.
func (c *Console) Synced() <-chan struct{} {
	if c.oidc != nil && c.oidc.signOuts.client != nil {
		return c.oidc.signOuts.synced
	}
	done := make(chan struct{})
	close(done)
	return done
}

// noStore keeps every console response out of caches: pages carry a CSRF
// token and a user's key list, and the create response carries a key.
func (c *Console) noStore(next http.Handler) http.Handler {
	vary := "Cookie"
	if c.opts.Auth == AuthHeader {
		vary += ", " + c.opts.UserHeader
		if c.opts.GroupsHeader != "" {
			vary += ", " + c.opts.GroupsHeader
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Vary", vary)
		next.ServeHTTP(w, r)
	})
}

// isAPI tells API requests (JSON errors) from page requests (HTML errors).
func isAPI(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/api/") }
