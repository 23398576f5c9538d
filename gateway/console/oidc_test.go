package console_test

// The console's own OpenID Connect sign-in, end to end: a real OIDC
// provider (mockoidc, an OIDC server speaking HTTP on loopback, standing in
// for Dex or Keycloak), the real gateway talking to it over the network,
// and clients that follow every redirect with a cookie jar, as a browser
// does.

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oauth2-proxy/mockoidc"
	testingclock "k8s.io/utils/clock/testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
)

// idp is a running OIDC provider. Each authorization pops the next queued
// user (queue them right before they sign in).
type idp struct {
	*mockoidc.MockOIDC
	// authorizations counts visits to the authorization endpoint: how a
	// test knows that a browser was sent to sign in.
	authorizations atomic.Int32
	// endSession is advertised as the end_session_endpoint.
	endSession string
}

// idpKey is the provider's signing key, made once: RSA key generation is
// slow on a busy machine.
var idpKey = sync.OnceValues(func() (*rsa.PrivateKey, error) { return rsa.GenerateKey(rand.Reader, 2048) })

func startIDP(t *testing.T) *idp {
	t.Helper()
	key, err := idpKey()
	if err != nil {
		t.Fatal(err)
	}
	m, err := mockoidc.NewServer(key)
	if err != nil {
		t.Fatal(err)
	}
	p := &idp{MockOIDC: m}
	if err := m.AddMiddleware(p.middleware); err != nil {
		t.Fatal(err)
	}
	ln := testenv.Listener(t)
	p.endSession = "http://" + ln.Addr().String() + "/oidc/logout"
	if err := m.Start(ln, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

// middleware counts authorizations and adds an end_session_endpoint to
// the discovery document (mockoidc has none; Keycloak and Dex do).
func (p *idp) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.AuthorizationEndpoint:
			p.authorizations.Add(1)
		case mockoidc.DiscoveryEndpoint:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			doc["end_session_endpoint"] = p.endSession
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// queue makes email (with groups) the next user to sign in.
func (p *idp) queue(email string, groups ...string) {
	p.QueueUser(&mockoidc.MockUser{Subject: "sub-" + email, Email: email, EmailVerified: true, PreferredUsername: strings.Split(email, "@")[0], Groups: groups})
}

// consoleKey is the key file's content shared by the replicas of a test.
var consoleKey = bytes.Repeat([]byte("console-key-file-"), 3)

// sessionLifetime is short in tests, so that moving the clock past it
// does not also outrun the provider's tokens (ten minutes).
const sessionLifetime = 5 * time.Minute

// oidcOptions are the console options of OIDC mode against p, for a
// gateway at gatewayURL.
func oidcOptions(namespace, gatewayURL string, p *idp, clock *testingclock.FakeClock, key []byte) console.Options {
	cfg := p.Config()
	return console.Options{
		Namespace: namespace,
		Auth:      console.AuthOIDC,
		CSRFKey:   key,
		Clock:     clock,
		OIDC: console.OIDCOptions{
			IssuerURL:       cfg.Issuer,
			ClientID:        cfg.ClientID,
			ClientSecret:    cfg.ClientSecret,
			RedirectURL:     gatewayURL + console.CallbackPath,
			Scopes:          []string{"openid", "email", "groups"},
			SessionLifetime: sessionLifetime,
		},
		// Header trust as in header mode's tests: OIDC mode must ignore
		// identity headers even from a peer header mode would believe.
		ProxyCIDRs:   []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")},
		UserHeader:   "X-Forwarded-Email",
		GroupsHeader: "X-Forwarded-Groups",
	}
}

// oidcStack is the whole system with the console in OIDC mode against p.
func oidcStack(t *testing.T, p *idp, clock *testingclock.FakeClock) *stack {
	t.Helper()
	return startStackAt(t, true, func(s *stack, o *server.Options) {
		o.Console = oidcOptions(o.Console.Namespace, s.URL, p, clock, consoleKey)
	})
}

// browserClient keeps cookies and follows redirects, as a browser does.
func browserClient(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &cookieRecorder{}}
}

// cookieRecorder remembers every Set-Cookie a client received, with the
// attributes a cookie jar does not give back.
type cookieRecorder struct {
	mu  sync.Mutex
	set []*http.Cookie
}

func (c *cookieRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(r)
	if err == nil {
		c.mu.Lock()
		c.set = append(c.set, resp.Cookies()...)
		c.mu.Unlock()
	}
	return resp, err
}

// lastSet is the last Set-Cookie of name that client received.
func lastSet(t *testing.T, client *http.Client, name string) *http.Cookie {
	t.Helper()
	rec := client.Transport.(*cookieRecorder)
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for i := len(rec.set) - 1; i >= 0; i-- {
		if rec.set[i].Name == name {
			return rec.set[i]
		}
	}
	t.Fatalf("the client never received a cookie %s", name)
	return nil
}

// signIn signs email in through the provider, starting where a person
// would: opening the console, which sends them to sign in.
func (s *stack) signIn(t *testing.T, p *idp, email string, groups ...string) *user {
	t.Helper()
	u := &user{s: s, email: email, client: browserClient(t)}
	p.queue(email, groups...)
	before := p.authorizations.Load()
	r := u.page(t, "")
	if r.Status != http.StatusOK {
		t.Fatalf("%s signing in: %d\n%.800s", email, r.Status, r.Body)
	}
	if p.authorizations.Load() != before+1 {
		t.Fatalf("%s reached the console without visiting the provider", email)
	}
	if m := whoami.FindSubmatch(r.Body); m == nil || string(m[1]) != email {
		t.Fatalf("after signing in as %s the console shows %q", email, m)
	}
	return u
}

// sessionCookie is the session cookie in u's jar.
func (u *user) sessionCookie(t *testing.T) *http.Cookie {
	t.Helper()
	base, _ := url.Parse(u.s.URL)
	for _, c := range u.client.Jar.Cookies(base) {
		if c.Name == "codevector-session" {
			return c
		}
	}
	t.Fatal("no session cookie in the jar")
	return nil
}

// noRedirects is a client that shows redirects instead of following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func get(t *testing.T, c *http.Client, url string, mutate ...func(*http.Request)) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mutate {
		m(req)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func TestOIDCSignInAndOwnKeys(t *testing.T) {
	p := startIDP(t)
	clock := testenv.FakeClock(t)
	s := oidcStack(t, p, clock)

	// Nobody is signed in: the API says 401, a page sends you to sign in.
	anonymous := &user{s: s, client: browserClient(t)}
	if r := anonymous.do(t, http.MethodGet, "/api/v1/apikeys", nil); r.Status != http.StatusUnauthorized || r.errorCode() != "unauthenticated" {
		t.Errorf("API without a session: %d %s", r.Status, r.Body)
	}
	resp := get(t, noRedirects, s.URL+"/api-keys?owner=x")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != console.SignInPath+"?rd=%2Fapi-keys%3Fowner%3Dx" {
		t.Errorf("page without a session: %d to %q, want a redirect to sign in and back", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = get(t, noRedirects, s.URL+console.SignInPath+"?rd=/api-keys")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc.String(), p.AuthorizationEndpoint()) ||
		loc.Query().Get("code_challenge_method") != "S256" || loc.Query().Get("code_challenge") == "" ||
		loc.Query().Get("nonce") == "" || len(loc.Query().Get("state")) < 40 || loc.Query().Get("redirect_uri") != s.URL+console.CallbackPath {
		t.Errorf("sign-in start: %d to %s; want the provider with PKCE S256, a nonce, a state and the redirect URL", resp.StatusCode, loc)
	}
	if ck := resp.Cookies(); len(ck) != 1 || !ck[0].HttpOnly || ck[0].SameSite != http.SameSiteLaxMode || ck[0].MaxAge <= 0 {
		t.Errorf("sign-in cookie %+v: want one HttpOnly, SameSite=Lax, short-lived cookie", ck)
	}

	alice := s.signIn(t, p, "alice@example.com", "engineering")
	ck := alice.sessionCookie(t)
	if set := lastSet(t, alice.client, ck.Name); !set.HttpOnly || set.SameSite != http.SameSiteLaxMode || set.Path != "/" || set.MaxAge != int(sessionLifetime/time.Second) || strings.Contains(set.Value, "alice") {
		t.Errorf("session cookie %s: want HttpOnly, SameSite=Lax, Path=/, Max-Age=%d, and nothing readable in it", set, int(sessionLifetime/time.Second))
	}
	if set := lastSet(t, alice.client, "codevector-sign-in"); set.MaxAge >= 0 {
		t.Errorf("the sign-in cookie outlived the callback: %s", set)
	}
	bob := s.signIn(t, p, "bob@example.com", "engineering")
	a, _ := alice.create(t, map[string]any{"displayName": "alice's laptop"})
	b, _ := bob.create(t, map[string]any{"displayName": "bob's laptop"})
	if a.APIKey.Owner != "alice@example.com" || b.APIKey.Owner != "bob@example.com" {
		t.Errorf("owners %q and %q", a.APIKey.Owner, b.APIKey.Owner)
	}
	if status := s.chat(t, a.Key); status != http.StatusOK {
		t.Errorf("the gateway answered alice's new key with %d", status)
	}
	if l, _ := alice.list(t, ""); len(l.Items) != 1 || l.Items[0].Name != a.APIKey.Name || l.Owners != nil {
		t.Errorf("alice lists %v (owners %v), want her key only", names(l.Items), l.Owners)
	}

	// Forged identity headers count for nothing in OIDC mode, from a peer
	// that header mode would trust, with or without a session.
	forge := func(r *http.Request) {
		r.Header.Set("X-Forwarded-Email", "bob@example.com")
		r.Header.Set("X-Forwarded-User", "bob@example.com")
		r.Header.Set("X-Forwarded-Groups", "codevector:admins")
	}
	if r := anonymous.do(t, http.MethodGet, "/api/v1/apikeys", nil, forge); r.Status != http.StatusUnauthorized {
		t.Errorf("forged headers without a session: %d %s", r.Status, r.Body)
	}
	if r := alice.do(t, http.MethodGet, "/api/v1/apikeys?owner=bob@example.com", nil, forge); r.Status != http.StatusOK || strings.Contains(r.String(), b.APIKey.Name) || strings.Contains(r.String(), `"owners"`) {
		t.Errorf("alice with forged headers: %d %s", r.Status, r.Body)
	}
	if r := alice.do(t, http.MethodPost, "/api/v1/apikeys/"+b.APIKey.Name+"/revoke", map[string]any{}, forge); r.Status != http.StatusNotFound {
		t.Errorf("alice revoking bob's key with forged headers: %d %s", r.Status, r.Body)
	}

	// The admin group, from the provider's groups claim, gives the admin view.
	carol := s.signIn(t, p, "carol@example.com", "engineering", "codevector:admins")
	l, _ := carol.list(t, "")
	if len(l.Owners) != 2 || len(l.Items) != 2 {
		t.Errorf("admin lists %v with owners %v, want both keys and both owners", names(l.Items), l.Owners)
	}
	if page := carol.page(t, ""); !strings.Contains(page.String(), `class="badge">Admin<`) {
		t.Error("the admin's page has no Admin badge")
	}
	if r := carol.revoke(t, b.APIKey.Name); r.Status != http.StatusOK {
		t.Errorf("admin revoking bob's key: %d %s", r.Status, r.Body)
	}

	// A tampered cookie is no session.
	raw := ck.Value
	i, c := len(raw)/2, "A"
	if raw[i] == 'A' {
		c = "B"
	}
	flipped := raw[:i] + c + raw[i+1:]
	for name, value := range map[string]string{"flipped": flipped, "truncated": raw[:len(raw)-4], "garbage": "eyJ1IjoiYm9iQGV4YW1wbGUuY29tIn0"} {
		r := anonymous.do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(&http.Cookie{Name: ck.Name, Value: value}) })
		if r.Status != http.StatusUnauthorized {
			t.Errorf("%s session cookie: %d %s", name, r.Status, r.Body)
		}
	}

	// The session ends after its lifetime, whatever the cookie's own
	// expiry says: the API says so, a page sends you to sign in again.
	clock.Step(sessionLifetime + time.Minute)
	r := alice.do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(ck) })
	if r.Status != http.StatusUnauthorized || !strings.Contains(r.errorMessage(), "expired") {
		t.Errorf("API with an expired session: %d %s", r.Status, r.Body)
	}
	resp = get(t, noRedirects, s.URL+"/api-keys", func(r *http.Request) { r.AddCookie(ck) })
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), console.SignInPath) {
		t.Errorf("page with an expired session: %d to %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
	alice = s.signIn(t, p, "alice@example.com")
	if l, _ := alice.list(t, ""); len(l.Items) != 1 {
		t.Errorf("alice after signing in again lists %v", names(l.Items))
	}
}

func TestOIDCSessionsAcrossReplicasAndSignOut(t *testing.T) {
	p := startIDP(t)
	clock := testenv.FakeClock(t)
	s := oidcStack(t, p, clock)
	dave := s.signIn(t, p, "dave@example.com")
	ck := dave.sessionCookie(t)

	// A replica with the same key file opens the session; one with another
	// key does not. (Each watches its own namespace: only the answer
	// matters.)
	var sameKey *stack
	for _, tc := range []struct {
		name   string
		key    []byte
		status int
	}{
		{"same key file", consoleKey, http.StatusOK},
		{"another key file", bytes.Repeat([]byte("another-key-file-"), 3), http.StatusUnauthorized},
	} {
		replica := startStackAt(t, false, func(rs *stack, o *server.Options) {
			o.Console = oidcOptions(o.Console.Namespace, rs.URL, p, clock, tc.key)
		})
		r := (&user{s: replica}).do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(ck) })
		if r.Status != tc.status {
			t.Errorf("replica with %s: %d %s, want %d", tc.name, r.Status, r.Body, tc.status)
		}
		if tc.status == http.StatusOK {
			sameKey = replica
		}
	}

	// A callback that is not this browser's sign-in is refused.
	for name, mutate := range map[string]func(*http.Request){
		"no sign-in cookie": func(*http.Request) {},
		"forged state": func(r *http.Request) {
			r.AddCookie(&http.Cookie{Name: "codevector-sign-in", Value: "AQ" + strings.Repeat("A", 100)})
		},
	} {
		resp := get(t, noRedirects, s.URL+console.CallbackPath+"?code=abc&state=xyz", mutate)
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("callback with %s: %d", name, resp.StatusCode)
		}
	}
	// Login CSRF: mallory's own callback (her code, her state), opened in
	// someone else's browser, does not sign that browser in as mallory.
	attacker := noRedirectsWith(browserClient(t))
	resp := get(t, attacker, s.URL+console.SignInPath)
	p.queue("mallory@example.com")
	resp = get(t, attacker, resp.Header.Get("Location"))
	callback := resp.Header.Get("Location")
	if !strings.HasPrefix(callback, s.URL+console.CallbackPath+"?") {
		t.Fatalf("the provider sent mallory to %q", callback)
	}
	victim := &user{s: s, client: browserClient(t)}
	get(t, noRedirectsWith(victim.client), s.URL+console.SignInPath) // the victim's own sign-in, unfinished
	if resp := get(t, noRedirectsWith(victim.client), callback); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("mallory's callback in the victim's browser: %d", resp.StatusCode)
	}
	if r := victim.do(t, http.MethodGet, "/api/v1/apikeys", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("the victim's browser is signed in after mallory's callback: %d %s", r.Status, r.Body)
	}

	// Sign-out needs the page's token and the same origin, clears the
	// session, and offers to end the provider's session too.
	if r := postForm(t, dave.client, s.URL+console.SignOutPath, "", "same-origin"); r.Status != http.StatusForbidden {
		t.Errorf("sign-out without the token: %d", r.Status)
	}
	dave.page(t, "")
	if r := postForm(t, dave.client, s.URL+console.SignOutPath, url.Values{"csrf_token": {dave.token}}.Encode(), "cross-site"); r.Status != http.StatusForbidden {
		t.Errorf("sign-out from another site: %d", r.Status)
	}
	if r := dave.do(t, http.MethodGet, "/api/v1/apikeys", nil); r.Status != http.StatusOK {
		t.Errorf("a refused sign-out signed dave out: %d", r.Status)
	}
	out := postForm(t, dave.client, s.URL+console.SignOutPath, url.Values{"csrf_token": {dave.token}}.Encode(), "same-origin")
	if out.Status != http.StatusOK || !strings.Contains(out.String(), "You have signed out") {
		t.Fatalf("sign-out: %d\n%.600s", out.Status, out.Body)
	}
	wantLogout := p.endSession + "?client_id=" + p.ClientID + "&amp;post_logout_redirect_uri=" + url.QueryEscape(s.URL+console.SignOutPath)
	if !strings.Contains(out.String(), wantLogout) {
		t.Errorf("the signed-out page does not link to the provider's sign-out %s:\n%s", wantLogout, out.Body)
	}
	if r := dave.do(t, http.MethodGet, "/api/v1/apikeys", nil); r.Status != http.StatusUnauthorized {
		t.Errorf("API after signing out: %d", r.Status)
	}
	// A copy of the session cookie taken before the sign-out (another tab,
	// a stolen one) is refused too, by this replica at once and by the
	// other one as soon as it has heard of the sign-out.
	withCopy := func(r *http.Request) { r.AddCookie(ck) }
	if r := (&user{s: s}).do(t, http.MethodGet, "/api/v1/apikeys", nil, withCopy); r.Status != http.StatusUnauthorized || !strings.Contains(string(r.Body), "signed out") {
		t.Errorf("the signed-out session's copy on the replica that signed it out: %d %s", r.Status, r.Body)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if r := (&user{s: sameKey}).do(t, http.MethodGet, "/api/v1/apikeys", nil, withCopy); r.Status != http.StatusUnauthorized {
			return fmt.Errorf("the signed-out session's copy on another replica: %d %s", r.Status, r.Body)
		}
		return nil
	})
	// A new sign-in is a new session: it works on both.
	again := s.signIn(t, p, "dave@example.com")
	if r := (&user{s: sameKey}).do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(again.sessionCookie(t)) }); r.Status != http.StatusOK {
		t.Errorf("a new session after signing out, on the other replica: %d %s", r.Status, r.Body)
	}
}

func noRedirectsWith(c *http.Client) *http.Client {
	return &http.Client{Jar: c.Jar, CheckRedirect: noRedirects.CheckRedirect}
}

// postForm posts a form as the page's Sign out button does, with the
// Sec-Fetch-Site a browser would send, and follows the redirect.
func postForm(t *testing.T, c *http.Client, url, form, secFetchSite string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", secFetchSite)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, b}
}

// A sign-in's destination is judged as the callback sends it: these pass
// a check of the raw value, and became "Location: /\evil.example" (which
// browsers open as //evil.example) once http.Redirect had cleaned them
// (issue 24).
func TestOIDCSignInStaysOnSiteAfterCleaning(t *testing.T) {
	p := startIDP(t)
	clock := testenv.FakeClock(t)
	s := oidcStack(t, p, clock)
	for _, rd := range []string{`/./\evil.example`, `/a/../\evil.example`, `/.//evil.example`} {
		client := browserClient(t)
		// Follow the sign-in through the provider, stop at the callback's
		// answer.
		client.CheckRedirect = func(_ *http.Request, via []*http.Request) error {
			if via[len(via)-1].URL.Path == console.CallbackPath {
				return http.ErrUseLastResponse
			}
			return nil
		}
		p.queue("alice@example.com")
		resp := get(t, client, s.URL+console.SignInPath+"?rd="+url.QueryEscape(rd))
		if resp.Request.URL.Path != console.CallbackPath || resp.StatusCode != http.StatusFound {
			t.Fatalf("rd=%q: sign-in ended at %s with %d, want the callback's redirect", rd, resp.Request.URL, resp.StatusCode)
		}
		if loc := resp.Header.Get("Location"); loc != "/api-keys" {
			t.Errorf("rd=%q: after sign-in the callback sends the browser to %q, want /api-keys", rd, loc)
		}
	}
}

// A user can end every one of their console sessions (a lost laptop), and
// an admin anyone's (someone who left), on every replica: the sessions
// issued before it are refused, later sign-ins work.
func TestOIDCSignOutEverywhere(t *testing.T) {
	p := startIDP(t)
	clock := testenv.FakeClock(t)
	s := oidcStack(t, p, clock)
	other := startStackAt(t, false, func(rs *stack, o *server.Options) {
		o.Console = oidcOptions(o.Console.Namespace, rs.URL, p, clock, consoleKey)
	})
	dave := s.signIn(t, p, "dave@example.com")
	laptop := dave.sessionCookie(t)
	carol := s.signIn(t, p, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	clock.Step(time.Second)

	if r := dave.do(t, http.MethodPost, "/api/v1/sessions/sign-out", map[string]string{"user": "carol@example.com"}); r.Status != http.StatusForbidden {
		t.Errorf("dave signing carol out: %d %s, want 403", r.Status, r.Body)
	}
	if r := carol.do(t, http.MethodPost, "/api/v1/sessions/sign-out", map[string]string{"user": "dave@example.com"}); r.Status != http.StatusOK {
		t.Fatalf("carol (admin) signing dave out everywhere: %d %s", r.Status, r.Body)
	}
	withLaptop := func(r *http.Request) { r.AddCookie(laptop) }
	for name, replica := range map[string]*stack{"this replica": s, "another replica": other} {
		testenv.Eventually(t, 5*time.Second, func() error {
			if r := (&user{s: replica}).do(t, http.MethodGet, "/api/v1/apikeys", nil, withLaptop); r.Status != http.StatusUnauthorized {
				return fmt.Errorf("dave's session on %s after an admin signed him out: %d %s", name, r.Status, r.Body)
			}
			return nil
		})
	}
	if r := carol.do(t, http.MethodGet, "/api/v1/apikeys", nil); r.Status != http.StatusOK {
		t.Errorf("carol's own session after signing dave out: %d", r.Status)
	}
	// Signing in again after it works, on every replica.
	clock.Step(time.Second)
	again := s.signIn(t, p, "dave@example.com")
	if r := (&user{s: other}).do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(again.sessionCookie(t)) }); r.Status != http.StatusOK {
		t.Errorf("dave's new session on another replica: %d %s", r.Status, r.Body)
	}
	// Dave ends his own sessions (no user named): the new one too, and a
	// copy of it.
	clock.Step(time.Second)
	copied := again.sessionCookie(t)
	if r := again.do(t, http.MethodPost, "/api/v1/sessions/sign-out", map[string]string{}); r.Status != http.StatusOK {
		t.Fatalf("dave signing himself out everywhere: %d %s", r.Status, r.Body)
	}
	testenv.Eventually(t, 5*time.Second, func() error {
		if r := (&user{s: other}).do(t, http.MethodGet, "/api/v1/apikeys", nil, func(r *http.Request) { r.AddCookie(copied) }); r.Status != http.StatusUnauthorized {
			return fmt.Errorf("dave's session on another replica after signing out everywhere: %d", r.Status)
		}
		return nil
	})
}
