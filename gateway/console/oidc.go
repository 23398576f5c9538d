package console

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/codevector/codevector/gateway/console/sealedcookie"
)

// The console's own sign-in routes (AuthOIDC). CallbackPath is the path of
// the redirect URL registered with the provider.
const (
	SignInPath   = "/oauth2/sign_in"
	CallbackPath = "/oauth2/callback"
	SignOutPath  = "/oauth2/sign_out"
)

// Defaults of OIDCOptions.
const (
	DefaultUserClaim       = "email"
	DefaultGroupsClaim     = "groups"
	DefaultSessionLifetime = 12 * time.Hour
)

// DefaultOIDCScopes are asked for when OIDCOptions.Scopes is empty. Add
// "groups" for providers that want it for the groups claim (Dex).
var DefaultOIDCScopes = []string{oidc.ScopeOpenID, "email", "profile"}

// loginLifetime bounds the round trip through the provider's sign-in page.
const loginLifetime = 10 * time.Minute

// OIDCOptions configure AuthOIDC.
type OIDCOptions struct {
	// IssuerURL is the provider's issuer; its discovery document is at
	// IssuerURL/.well-known/openid-configuration.
	IssuerURL string
	// ClientID and ClientSecret are the console's OAuth client at the
	// provider (a confidential client; PKCE is used on top).
	ClientID     string
	ClientSecret string
	// RedirectURL is the callback registered with the provider: this
	// gateway's public address and CallbackPath, such as
	// https://gateway.example.com/oauth2/callback. It is configured rather
	// than derived from the request's Host, which the client controls: a
	// derived one would let a request choose where the provider sends the
	// code (wherever the provider's registration is loose enough), and
	// behind an ingress the gateway may see an internal host and scheme.
	// It must be https, except on localhost or a loopback address (dev and
	// tests), where the cookies are then sent without Secure.
	RedirectURL string
	// Scopes to ask for; "openid" is always among them. Default
	// DefaultOIDCScopes.
	Scopes []string
	// UserClaim is the ID token claim that names the user, who owns the
	// keys. Default "email", what Kubernetes usernames from an OIDC
	// provider usually are, so console and kubectl keys share an owner.
	// An email the provider says is not verified is refused.
	UserClaim string
	// GroupsClaim is the claim with the user's groups (a list of strings,
	// or one string). Default "groups". Read from the ID token, else from
	// the provider's userinfo endpoint.
	GroupsClaim string
	// SessionLifetime is how long a sign-in lasts. Default 12h. The
	// console does not ask the provider again before then: a user
	// disabled at the provider keeps the console (not the gateway's API
	// keys, which are separate) until the session ends.
	SessionLifetime time.Duration
	// HTTPClient talks to the provider. Default: a client with a 15 s
	// timeout.
	HTTPClient *http.Client
}

// oidcLogin is the console's side of the OpenID Connect authorization-code
// flow: the sign-in state in one short-lived sealed cookie, the session in
// another, both keyed from the console's key file.
type oidcLogin struct {
	opts       OIDCOptions
	adminGroup string
	now        func() time.Time
	log        *slog.Logger
	redirect   *url.URL
	// secure is false only for a loopback http redirect URL. Cookie names
	// then lose the __Host- prefix, which browsers accept only with Secure.
	secure                   bool
	sessionCookie, stateName string
	sessions, logins         *sealedcookie.Codec
	// signOuts are the sessions ended on any replica.
	signOuts *signOuts

	mu       sync.Mutex
	provider *oidcProvider // nil until discovery has succeeded
	lastTry  time.Time
	lastErr  error
}

// oidcProvider is what discovery found.
type oidcProvider struct {
	oauth2     oauth2.Config
	verifier   *oidc.IDTokenVerifier
	userinfo   *oidc.Provider
	endSession string
}

// session is what the session cookie holds. Groups keeps only the groups
// the console acts on (the admin group), so the cookie stays small however
// many groups the provider lists.
type session struct {
	User   string   `json:"u"`
	Groups []string `json:"g,omitempty"`
	// ID names the session for its sign-out (128 random bits, hex), and
	// Issued (Unix milliseconds) orders it against a sign-out of the user
	// everywhere. A cookie without an ID predates sign-outs and is refused.
	ID     string `json:"i"`
	Issued int64  `json:"t"`
}

// loginState is what the sign-in cookie holds between the redirect to the
// provider and the callback.
type loginState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	ReturnTo string `json:"r"`
}

func newOIDCLogin(o OIDCOptions, secret []byte, adminGroup string, now func() time.Time, log *slog.Logger) (*oidcLogin, error) {
	switch {
	case o.IssuerURL == "":
		return nil, errors.New("console: OIDC sign-in needs the provider's issuer URL (--oidc-issuer-url)")
	case o.ClientID == "":
		return nil, errors.New("console: OIDC sign-in needs a client ID (--oidc-client-id)")
	case o.ClientSecret == "":
		return nil, errors.New("console: OIDC sign-in needs a client secret (--oidc-client-secret-file)")
	}
	redirect, secure, err := parseRedirectURL(o.RedirectURL)
	if err != nil {
		return nil, err
	}
	if len(o.Scopes) == 0 {
		o.Scopes = DefaultOIDCScopes
	}
	if !slices.Contains(o.Scopes, oidc.ScopeOpenID) {
		o.Scopes = append([]string{oidc.ScopeOpenID}, o.Scopes...)
	}
	o.UserClaim = cmp.Or(o.UserClaim, DefaultUserClaim)
	o.GroupsClaim = cmp.Or(o.GroupsClaim, DefaultGroupsClaim)
	if o.SessionLifetime <= 0 { // --console-session-lifetime takes any duration
		o.SessionLifetime = DefaultSessionLifetime
	}
	o.HTTPClient = cmp.Or(o.HTTPClient, &http.Client{Timeout: 15 * time.Second})
	l := &oidcLogin{opts: o, adminGroup: adminGroup, now: now, log: log, redirect: redirect, secure: secure,
		sessionCookie: "codevector-session", stateName: "codevector-sign-in"}
	if secure {
		l.sessionCookie, l.stateName = "__Host-"+l.sessionCookie, "__Host-"+l.stateName
	} else {
		log.Warn("Console cookies are sent without Secure: the OIDC redirect URL is plain http on loopback, which is only for development", "redirectURL", o.RedirectURL)
	}
	if l.sessions, err = sealedcookie.New(secret, "session", now); err != nil {
		return nil, err
	}
	if l.logins, err = sealedcookie.New(secret, "sign-in", now); err != nil {
		return nil, err
	}
	return l, nil
}

// parseRedirectURL checks --oidc-redirect-url and tells whether cookies
// must be Secure.
func parseRedirectURL(s string) (*url.URL, bool, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, false, fmt.Errorf("console: the OIDC redirect URL %q is not an absolute URL such as https://gateway.example.com%s", s, CallbackPath)
	}
	if u.Path != CallbackPath {
		return nil, false, fmt.Errorf("console: the OIDC redirect URL %q must have the path %s, where the console receives the provider's answer", s, CallbackPath)
	}
	switch u.Scheme {
	case "https":
		return u, true, nil
	case "http":
		if isLoopback(u.Hostname()) {
			return u, false, nil
		}
	}
	return nil, false, fmt.Errorf("console: the OIDC redirect URL %q must be https (plain http only on localhost, for development): session cookies must not travel in clear text", s)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// discover fetches the provider's discovery document once, on first use,
// so a provider that is down when the gateway starts does not stop the
// gateway (which serves API traffic regardless); a failure is retried at
// most every few seconds.
func (l *oidcLogin) discover(ctx context.Context) (*oidcProvider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.provider != nil {
		return l.provider, nil
	}
	if l.lastErr != nil && l.now().Sub(l.lastTry) < 5*time.Second {
		return nil, l.lastErr
	}
	l.lastTry = l.now()
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, l.opts.HTTPClient), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, l.opts.IssuerURL)
	if err != nil {
		l.lastErr = fmt.Errorf("discovering the OIDC provider %s: %w", l.opts.IssuerURL, err)
		return nil, l.lastErr
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = p.Claims(&extra)
	l.provider = &oidcProvider{
		oauth2: oauth2.Config{
			ClientID:     l.opts.ClientID,
			ClientSecret: l.opts.ClientSecret,
			Endpoint:     p.Endpoint(),
			RedirectURL:  l.redirect.String(),
			Scopes:       l.opts.Scopes,
		},
		verifier:   p.Verifier(&oidc.Config{ClientID: l.opts.ClientID, Now: l.now}),
		userinfo:   p,
		endSession: extra.EndSession,
	}
	l.lastErr = nil
	l.log.Info("Discovered the OIDC provider", "issuer", l.opts.IssuerURL, "endSession", extra.EndSession != "")
	return l.provider, nil
}

// cookie is a console cookie: host-only, whole site, HttpOnly, Lax (sent
// on the provider's top-level redirect back, not on cross-site
// subrequests), Secure but on loopback http.
func (l *oidcLogin) cookie(name, value string, maxAge time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: l.secure, SameSite: http.SameSiteLaxMode}
	if maxAge > 0 {
		c.MaxAge = int(maxAge / time.Second)
	} else {
		c.MaxAge = -1
	}
	return c
}

func (l *oidcLogin) clearSession(w http.ResponseWriter) {
	http.SetCookie(w, l.cookie(l.sessionCookie, "", -1))
}

// session reads the session cookie: the session, or why there is none.
func (l *oidcLogin) session(r *http.Request) (*session, string) {
	ck, err := r.Cookie(l.sessionCookie)
	if err != nil || ck.Value == "" {
		return nil, reasonNoSession
	}
	var s session
	switch err := l.sessions.Open(ck.Value, &s); {
	case errors.Is(err, sealedcookie.ErrExpired):
		return nil, reasonSessionExpired
	case err != nil:
		return nil, reasonSessionRejected
	case !validUser(s.User) || s.User == "" || s.ID == "":
		return nil, reasonSessionRejected
	case l.signOuts.ended(&s):
		return nil, reasonSignedOut
	}
	return &s, ""
}

// newSessionID is 128 random bits, in hex: it names the session's
// sign-out Lease, so it must be a valid object name.
func newSessionID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}

// randomToken is 256 bits for state and nonce.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// returnTo keeps a sign-in's destination on this site: an absolute path,
// never "//host" or "/\\host", which browsers read as another host.
//
// The path is judged as it will be sent: http.Redirect cleans it
// (path.Clean) before writing Location, so "/./\\evil.example" or
// "/a/../\\evil.example" would pass a check of the raw value and leave as
// "/\\evil.example". It is cleaned here, the same way, and the cleaned
// value is both checked and returned (cleaning it again changes nothing).
// Backslashes and control characters are refused wherever they are:
// browsers read "\\" as "/" and drop tabs and line breaks from URLs.
func returnTo(rd string) string {
	const fallback = "/api-keys"
	if rd == "" || rd[0] != '/' || strings.HasPrefix(rd, "//") || strings.ContainsFunc(rd, func(r rune) bool {
		return r == '\\' || unicode.IsControl(r) || r == utf8.RuneError
	}) {
		return fallback
	}
	p, query, hasQuery := strings.Cut(rd, "?")
	if strings.Contains(p, "//") {
		// Cleaning would fold it away, but no page of this site needs it,
		// and a path that says "//host" anywhere is somebody's attempt.
		return fallback
	}
	cleaned := path.Clean(p)
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(cleaned, "/") {
		cleaned += "/" // as http.Redirect keeps a trailing slash
	}
	if hasQuery {
		cleaned += "?" + query
	}
	if !strings.HasPrefix(cleaned, "/") || strings.HasPrefix(cleaned, "//") {
		return fallback
	}
	u, err := url.Parse(cleaned)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return fallback
	}
	// An escaped backslash or slash that a lenient browser or proxy might
	// decode into a host.
	if strings.Contains(strings.ToLower(p), "%5c") || strings.HasPrefix(strings.ToLower(cleaned), "/%2f") {
		return fallback
	}
	return cleaned
}

// claims reads the user and groups from the ID token, asking the userinfo
// endpoint for what the token leaves out (some providers put groups only
// there). problem, when set, is for the person signing in.
func (l *oidcLogin) claims(ctx context.Context, p *oidcProvider, idToken *oidc.IDToken, tok *oauth2.Token) (user string, groups []string, problem string) {
	var claims map[string]any
	if err := idToken.Claims(&claims); err != nil {
		return "", nil, "The sign-in provider's ID token could not be read."
	}
	_, hasUser := claims[l.opts.UserClaim]
	_, hasGroups := claims[l.opts.GroupsClaim]
	if (!hasUser || !hasGroups) && p.userinfo.UserInfoEndpoint() != "" {
		info, err := p.userinfo.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		var more map[string]any
		switch {
		case err != nil:
			l.log.Info("Failed to read the OIDC userinfo endpoint", "error", err)
		case info.Subject != idToken.Subject:
			l.log.Warn("Ignored OIDC userinfo about another subject", "subject", idToken.Subject)
		case info.Claims(&more) == nil:
			for k, v := range more {
				if _, ok := claims[k]; !ok {
					claims[k] = v
				}
			}
		}
	}
	user, _ = claims[l.opts.UserClaim].(string)
	user = strings.TrimSpace(user)
	if user == "" {
		return "", nil, fmt.Sprintf("Your sign-in provider did not say who you are (no %q claim). Ask your administrator to check the gateway's --oidc-user-claim and --oidc-scopes.", l.opts.UserClaim)
	}
	if !validUser(user) {
		return "", nil, fmt.Sprintf("Your sign-in provider's %q claim cannot be used as a user name. Ask your administrator to check the gateway's --oidc-user-claim.", l.opts.UserClaim)
	}
	if l.opts.UserClaim == "email" && !emailVerified(claims["email_verified"]) {
		return "", nil, "Your sign-in provider says your email address is not verified. Verify it there, then sign in again."
	}
	switch g := claims[l.opts.GroupsClaim].(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok {
				groups = append(groups, s)
			}
		}
	}
	return user, groups, ""
}

// emailVerified refuses only an explicit false: many providers that verify
// every address never send the claim. Some send it as a string.
func emailVerified(v any) bool {
	switch v := v.(type) {
	case bool:
		return v
	case string:
		return !strings.EqualFold(v, "false")
	default:
		return true
	}
}
