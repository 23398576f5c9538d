package console

// The console's sign-in routes in OIDC mode: /oauth2/sign_in starts the
// authorization-code flow, /oauth2/callback finishes it and starts the
// session, /oauth2/sign_out ends it. oidc.go has the configuration, the
// provider and the cookies.

import (
	"cmp"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

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
	s := session{User: user, ID: newSessionID(), Issued: l.now().UnixMilli()}
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
		l.clearSession(w)
		// Ended on every replica, copies of the cookie included: the
		// sign-out is recorded before the user is told it happened.
		if err := l.signOuts.endSession(r.Context(), s); err != nil {
			c.log.Error("Failed to record a console sign-out for the other replicas", "user", s.User, "error", err)
			c.renderNotice(w, http.StatusServiceUnavailable, "Signed out here only",
				"This browser is signed out, but the console could not record the sign-out for its other replicas, so a copy of this session could still be used until it expires. Sign in and out again, or ask your administrator to sign you out everywhere.",
				link{URL: SignInPath, Label: "Sign in again", Primary: true, ID: "sign-in"})
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

// signOutEverywhereRequest names whose sessions end: the caller's own when
// empty; another user's only for an admin.
type signOutEverywhereRequest struct {
	User string `json:"user"`
}

// serveSignOutEverywhere: POST /api/v1/sessions/sign-out. It ends every
// console session of a user issued until now, on every replica: a user's
// own (a lost laptop), or, for an admin, anyone's (someone who left). It
// answers once the sign-out is recorded for the other replicas.
func (c *Console) serveSignOutEverywhere(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	if c.oidc == nil {
		writeError(w, &apiError{http.StatusNotFound, "no_sessions", "The console has no sessions of its own in this mode (--console-auth is not oidc): sign-outs are the sign-in proxy's."})
		return
	}
	var req signOutEverywhereRequest
	if aerr := decodeJSON(w, r, &req, "user"); aerr != nil {
		writeError(w, aerr)
		return
	}
	user := cmp.Or(req.User, id.User)
	if user != id.User && !id.Admin {
		writeError(w, &apiError{http.StatusForbidden, "forbidden", "Only members of " + c.opts.AdminGroup + " may sign out another user."})
		return
	}
	if !validUser(user) {
		writeError(w, &apiError{http.StatusBadRequest, "invalid_user", "The user name is not one the console can sign in."})
		return
	}
	if err := c.oidc.signOuts.endUser(r.Context(), user); err != nil {
		c.log.Error("Failed to sign a user out everywhere", "user", user, "by", id.User, "error", err)
		writeError(w, &apiError{http.StatusServiceUnavailable, "not_recorded", "The sign-out could not be recorded for every gateway replica; nothing changed there. Try again."})
		return
	}
	c.log.Info("Signed a user out of every console session", "user", user, "by", id.User)
	if user == id.User {
		c.oidc.clearSession(w)
	}
	writeJSON(w, http.StatusOK, map[string]string{"user": user, "signedOutAt": c.now().UTC().Format(time.RFC3339)})
}
