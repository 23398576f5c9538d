package console

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

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
	if o.UserClaim == "" {
		o.UserClaim = DefaultUserClaim
	}
	if o.GroupsClaim == "" {
		o.GroupsClaim = DefaultGroupsClaim
	}
	if o.SessionLifetime <= 0 {
		o.SessionLifetime = DefaultSessionLifetime
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 15 * time.Second}
	}
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
	case !validUser(s.User) || s.User == "":
		return nil, reasonSessionRejected
	}
	return &s, ""
}

// randomToken is 256 bits for state and nonce.
func randomToken() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// returnTo keeps a sign-in's destination on this site: a path, never
// "//host" or "/\host", which browsers read as another host.
func returnTo(rd string) string {
	if rd == "" || rd[0] != '/' || strings.HasPrefix(rd, "//") || strings.HasPrefix(rd, "/\\") || strings.ContainsAny(rd, "\r\n\t") {
		return "/api-keys"
	}
	if u, err := url.Parse(rd); err != nil || u.Scheme != "" || u.Host != "" {
		return "/api-keys"
	}
	return rd
}

// serveSignIn: GET /oauth2/sign_in[?rd=/api-keys...]. Starts the
// authorization-code flow with PKCE (S256): state, nonce and verifier go in
// a sealed cookie that lives for loginLifetime, then the browser goes to
// the provider.
func (c *Console) serveSignIn(w http.ResponseWriter, r *http.Request) {
	l := c.oidc
	p, err := l.discover(r.Context())
	if err != nil {
		c.log.Warn("Failed to start an OIDC sign-in", "error", err)
		c.providerUnavailable(w)
		return
	}
	st := loginState{State: randomToken(), Nonce: randomToken(), Verifier: oauth2.GenerateVerifier(), ReturnTo: returnTo(r.URL.Query().Get("rd"))}
	value, err := l.logins.Seal(st, l.now().Add(loginLifetime))
	if err != nil {
		c.log.Error("Failed to seal the sign-in state", "error", err)
		c.renderNotice(w, http.StatusInternalServerError, "Sign-in failed", "The console could not start the sign-in. Try again.")
		return
	}
	http.SetCookie(w, l.cookie(l.stateName, value, loginLifetime))
	http.Redirect(w, r, p.oauth2.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

func (c *Console) providerUnavailable(w http.ResponseWriter) {
	c.renderNotice(w, http.StatusServiceUnavailable, "Sign-in unavailable",
		"The console could not reach your sign-in provider. Try again in a minute; if it keeps happening, ask your administrator to check the gateway's --oidc-issuer-url and its logs.",
		link{URL: SignInPath, Label: "Try again", Primary: true})
}

// providerError is an OAuth error code as RFC 6749 spells them; anything
// else from the query string is not shown.
var providerError = regexp.MustCompile(`^[a-z_]{1,64}$`)

// serveCallback: GET /oauth2/callback?code=...&state=... The provider
// sends the browser back here. The state must match the sign-in cookie's
// (no one else's sign-in can be completed in this browser), the code is
// exchanged with the PKCE verifier, and go-oidc checks the ID token's
// signature, issuer, audience and expiry; the nonce is checked here.
func (c *Console) serveCallback(w http.ResponseWriter, r *http.Request) {
	l := c.oidc
	again := link{URL: SignInPath, Label: "Sign in again", Primary: true, ID: "sign-in"}
	// The sign-in state is good for one callback, whatever happens.
	http.SetCookie(w, l.cookie(l.stateName, "", -1))
	var st loginState
	ck, err := r.Cookie(l.stateName)
	q := r.URL.Query()
	if err != nil || l.logins.Open(ck.Value, &st) != nil || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		c.log.Debug("Refused an OIDC callback without a matching sign-in", "cookie", err == nil, "remote", r.RemoteAddr)
		c.renderNotice(w, http.StatusBadRequest, "Sign-in expired",
			"This sign-in was started more than 10 minutes ago, in another browser, or at another address than "+l.redirect.Scheme+"://"+l.redirect.Host+". Sign in again from there.", again)
		return
	}
	if e := q.Get("error"); e != "" {
		c.log.Info("The OIDC provider refused a sign-in", "error", e, "description", q.Get("error_description"))
		msg := "Your sign-in provider did not sign you in."
		if providerError.MatchString(e) {
			msg = fmt.Sprintf("Your sign-in provider did not sign you in (%s).", e)
		}
		c.renderNotice(w, http.StatusForbidden, "Sign-in failed", msg+" Try again; if it keeps happening, ask your administrator whether you may use the console.", again)
		return
	}
	p, err := l.discover(r.Context())
	if err != nil {
		c.log.Warn("Failed to finish an OIDC sign-in", "error", err)
		c.providerUnavailable(w)
		return
	}
	ctx, cancel := context.WithTimeout(oidc.ClientContext(r.Context(), l.opts.HTTPClient), 20*time.Second)
	defer cancel()
	tok, err := p.oauth2.Exchange(ctx, q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		c.log.Warn("The OIDC provider refused the authorization code", "error", err)
		c.renderNotice(w, http.StatusBadGateway, "Sign-in failed", "Your sign-in provider did not accept the sign-in. Try again; if it keeps happening, ask your administrator to check the console's client ID and secret.", again)
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := p.verifier.Verify(ctx, raw)
	if err == nil && subtle.ConstantTimeCompare([]byte(idToken.Nonce), []byte(st.Nonce)) != 1 {
		err = errors.New("the ID token's nonce is not this sign-in's")
	}
	if err != nil {
		c.log.Warn("Refused an OIDC ID token", "error", err)
		c.renderNotice(w, http.StatusUnauthorized, "Sign-in failed", "The console could not verify the answer of your sign-in provider. Try again; if it keeps happening, ask your administrator to check the gateway's logs.", again)
		return
	}
	user, groups, problem := l.claims(ctx, p, idToken, tok)
	if problem != "" {
		c.log.Warn("Refused an OIDC sign-in", "subject", idToken.Subject, "problem", problem)
		c.renderNotice(w, http.StatusForbidden, "Sign-in failed", problem, again)
		return
	}
	s := session{User: user}
	if slices.Contains(groups, l.adminGroup) {
		s.Groups = []string{l.adminGroup}
	}
	value, err := l.sessions.Seal(s, l.now().Add(l.opts.SessionLifetime))
	if err != nil {
		c.log.Error("Failed to seal a console session", "error", err)
		c.renderNotice(w, http.StatusInternalServerError, "Sign-in failed", "The console could not start your session. Try again.", again)
		return
	}
	http.SetCookie(w, l.cookie(l.sessionCookie, value, l.opts.SessionLifetime))
	c.log.Info("Signed in to the console", "user", user, "admin", len(s.Groups) > 0)
	http.Redirect(w, r, st.ReturnTo, http.StatusFound)
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

// serveSignOut: POST /oauth2/sign_out, from the page's Sign out button.
// Same-origin and the CSRF token, so another site cannot sign people out;
// then the session cookie is cleared and the browser goes to the signed-out
// page. (A redirect straight to the provider's end_session_endpoint would
// be blocked by the page's form-action 'self'; that page links to it.)
func (c *Console) serveSignOut(w http.ResponseWriter, r *http.Request) {
	l := c.oidc
	if err := c.crossOrigin.Check(r); err != nil {
		c.renderNotice(w, http.StatusForbidden, "Sign-out refused", "The console refuses to sign you out on another website's behalf. Use the Sign out button in the console.", link{URL: "/api-keys", Label: "Open the console"})
		return
	}
	if s, _ := l.session(r); s != nil {
		r.Body = http.MaxBytesReader(w, r.Body, 4<<10)
		if err := r.ParseForm(); err != nil || !c.csrf.Valid(r.PostForm.Get("csrf_token"), s.User) {
			c.renderNotice(w, http.StatusForbidden, "Sign-out refused", "The page's security token is missing or out of date. Reload the console and sign out again.", link{URL: "/api-keys", Label: "Open the console"})
			return
		}
		c.log.Info("Signed out of the console", "user", s.User)
	}
	l.clearSession(w)
	http.Redirect(w, r, SignOutPath, http.StatusSeeOther)
}

// serveSignedOut: GET /oauth2/sign_out, the page after signing out. It
// changes nothing (a GET must not), and offers to sign in again and, when
// the provider has one, to end the session at the provider too.
func (c *Console) serveSignedOut(w http.ResponseWriter, r *http.Request) {
	l := c.oidc
	links := []link{{URL: SignInPath, Label: "Sign in again", Primary: true, ID: "sign-in"}}
	if p, err := l.discover(r.Context()); err == nil && p.endSession != "" {
		if u, err := url.Parse(p.endSession); err == nil && (u.Scheme == "https" || u.Scheme == "http") {
			q := u.Query()
			q.Set("client_id", l.opts.ClientID)
			q.Set("post_logout_redirect_uri", l.redirect.Scheme+"://"+l.redirect.Host+SignOutPath)
			u.RawQuery = q.Encode()
			links = append(links, link{URL: u.String(), Label: "Sign out of your identity provider too", ID: "provider-sign-out"})
		}
	}
	if s, _ := l.session(r); s != nil {
		// Another tab signed in again meanwhile.
		c.renderNotice(w, http.StatusOK, "Signed in", "You are signed in as "+s.User+".", link{URL: "/api-keys", Label: "Open the console", Primary: true})
		return
	}
	c.renderNotice(w, http.StatusOK, "Signed out", "You have signed out of the CodeVector console. Your API keys keep working; sign in again to manage them.", links...)
}
