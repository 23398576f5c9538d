package console

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

func TestStatusOf(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	past := metav1.NewTime(now.Add(-time.Hour))
	future := metav1.NewTime(now.Add(time.Hour))
	for _, tc := range []struct {
		name string
		spec gatewayv1alpha1.APIKeySpec
		st   gatewayv1alpha1.APIKeyStatus
		want string
	}{
		{"new", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.APIKeyStatus{}, StatusPending},
		{"active", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}, StatusActive},
		{"revoked before the controller noticed", gatewayv1alpha1.APIKeySpec{Revoked: true}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}, StatusRevoked},
		{"revoked", gatewayv1alpha1.APIKeySpec{Revoked: true}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseRevoked}, StatusRevoked},
		{"expired", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseExpired}, StatusExpired},
		{"past expiry before the controller noticed", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}, StatusExpired},
		{"expiring later", gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(future.Time)}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}, StatusActive},
		{"revoked and expired", gatewayv1alpha1.APIKeySpec{Revoked: true, ExpiresAt: gatewayv1alpha1.NewExpiry(past.Time)}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseExpired}, StatusRevoked},
		{"failed", gatewayv1alpha1.APIKeySpec{}, gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseFailed}, StatusFailed},
	} {
		f := keyindex.APIKeyFactsOf(&gatewayv1alpha1.APIKey{Spec: tc.spec, Status: tc.st})
		if got := statusOf(&f, now); got != tc.want {
			t.Errorf("%s: status %q, want %q", tc.name, got, tc.want)
		}
	}
	// Deleted, its finalizer still waiting for the manager: every gateway
	// refuses it as revoked, so the console says so too.
	deleting := keyindex.APIKeyFactsOf(&gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: &past, Finalizers: []string{gatewayv1alpha1.Finalizer}},
		Status:     gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive},
	})
	if got := statusOf(&deleting, now); got != StatusRevoked {
		t.Errorf("deleted, finalizer pending: status %q, want %q", got, StatusRevoked)
	}
}

func TestRelativeTime(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{-5 * time.Second, "just now"},
		{10 * time.Second, "just now"},
		{time.Minute, "1 minute ago"},
		{3*time.Minute + 20*time.Second, "3 minutes ago"},
		{time.Hour, "1 hour ago"},
		{23 * time.Hour, "23 hours ago"},
		{49 * time.Hour, "2 days ago"},
		{45 * 24 * time.Hour, "1 month ago"},
		{800 * 24 * time.Hour, "2 years ago"},
	} {
		if got := relativeTime(now, now.Add(-tc.ago)); got != tc.want {
			t.Errorf("%v ago: %q, want %q", tc.ago, got, tc.want)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "key",
		"laptop":                       "laptop",
		"Alice's laptop":               "alice-s-laptop",
		"  CI / main  ":                "ci-main",
		"<img src=x onerror=alert(1)>": "img-src-x-onerror-alert-1",
		"Überschall":                   "berschall",
		"東京":                           "key",
		strings.Repeat("a", 80):        strings.Repeat("a", 40),
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCreateRequestValidation(t *testing.T) {
	now := time.Now()
	soon := now.Add(30 * time.Second)
	later := now.Add(48 * time.Hour)
	for _, tc := range []struct {
		name     string
		req      createRequest
		wantCode string
	}{
		{"empty", createRequest{}, ""},
		{"all", createRequest{Name: "laptop", DisplayName: "Alice's laptop", TTL: "720h"}, ""},
		{"expiry date", createRequest{ExpiresAt: &later}, ""},
		{"upper case name", createRequest{Name: "Laptop"}, "invalid_name"},
		{"name with dot", createRequest{Name: "my.laptop"}, "invalid_name"},
		{"long name", createRequest{Name: strings.Repeat("a", 64)}, "invalid_name"},
		{"long display name", createRequest{DisplayName: strings.Repeat("é", 129)}, "invalid_display_name"},
		{"control character", createRequest{DisplayName: "a\nb"}, "invalid_display_name"},
		{"both expiries", createRequest{ExpiresAt: &later, TTL: "1h"}, "invalid_expiry"},
		{"expiry in the past", createRequest{ExpiresAt: &soon}, "invalid_expiry"},
		{"bad ttl", createRequest{TTL: "30 days"}, "invalid_expiry"},
		{"tiny ttl", createRequest{TTL: "5s"}, "invalid_expiry"},
	} {
		k, aerr := tc.req.toAPIKey("ns", "alice@example.com", now)
		switch {
		case tc.wantCode == "" && aerr != nil:
			t.Errorf("%s: refused: %v", tc.name, aerr)
		case tc.wantCode != "" && (aerr == nil || aerr.Code != tc.wantCode):
			t.Errorf("%s: got %v, want code %s", tc.name, aerr, tc.wantCode)
		case aerr == nil:
			if k.Spec.Owner != "alice@example.com" || k.Namespace != "ns" || (k.Name == "") == (k.GenerateName == "") {
				t.Errorf("%s: built %+v", tc.name, k.ObjectMeta)
			}
		}
	}
}

func TestCSRFToken(t *testing.T) {
	s, err := newCSRFSigner(nil)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s.now = func() time.Time { return now }
	tok := s.Token("alice@example.com")
	if !s.Valid(tok, "alice@example.com") {
		t.Fatal("a fresh token is refused")
	}
	if s.Valid(tok, "bob@example.com") {
		t.Error("alice's token is accepted for bob")
	}
	other, _ := newCSRFSigner(nil)
	if other.Valid(tok, "alice@example.com") {
		t.Error("a token from another key is accepted")
	}
	for _, bad := range []string{"", "x", "1.2", tok + "x", strings.Replace(tok, ".", ".A", 1)} {
		if s.Valid(bad, "alice@example.com") {
			t.Errorf("token %q is accepted", bad)
		}
	}
	s.now = func() time.Time { return now.Add(csrfMaxAge + time.Minute) }
	if s.Valid(tok, "alice@example.com") {
		t.Error("an expired token is accepted")
	}
	if _, err := newCSRFSigner([]byte("short")); err == nil {
		t.Error("a short key is accepted")
	}
}

func TestIdentityFromHeaders(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	plain := &Console{opts: Options{Auth: AuthHeader, AdminGroup: "codevector:admins", ProxyCIDRs: trusted, UserHeader: "X-Forwarded-User"}}
	withGroups := &Console{opts: Options{Auth: AuthHeader, AdminGroup: "codevector:admins", ProxyCIDRs: trusted, UserHeader: "X-Forwarded-Email", GroupsHeader: "X-Forwarded-Groups"}}
	untrusting := &Console{opts: Options{Auth: AuthHeader, AdminGroup: "codevector:admins", UserHeader: "X-Forwarded-User", GroupsHeader: "X-Forwarded-Groups"}}
	req := func(remote string, h ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/api-keys", nil)
		r.RemoteAddr = remote
		for i := 0; i < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name       string
		c          *Console
		r          *http.Request
		wantUser   string
		wantAdmin  bool
		wantReason string
	}{
		{"user header", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice"), "alice", false, ""},
		{"email does not override the user", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice", "X-Forwarded-Email", "carol@example.com"), "alice", false, ""},
		{"email alone is no user", plain, req("10.1.2.3:5555", "X-Forwarded-Email", "carol@example.com"), "", false, reasonNoUser},
		{"groups ignored without a groups header", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice", "X-Forwarded-Groups", "codevector:admins"), "alice", false, ""},
		{"configured email header", withGroups, req("10.1.2.3:5555", "X-Forwarded-Email", "alice@example.com", "X-Forwarded-User", "carol"), "alice@example.com", false, ""},
		{"configured groups header", withGroups, req("[::1]:5555", "X-Forwarded-Email", "carol@example.com", "X-Forwarded-Groups", "dev, codevector:admins"), "carol@example.com", true, ""},
		{"user header twice", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice", "x-forwarded-user", "carol"), "", false, reasonRepeated},
		{"user header with a comma", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice,carol"), "", false, reasonRepeated},
		{"groups header twice", withGroups, req("10.1.2.3:5555", "X-Forwarded-Email", "alice@example.com", "X-Forwarded-Groups", "dev", "X-Forwarded-Groups", "codevector:admins"), "", false, reasonRepeated},
		{"IPv4-mapped peer", plain, req("[::ffff:10.0.0.1]:5555", "X-Forwarded-User", "alice"), "alice", false, ""},
		{"untrusted peer", withGroups, req("192.0.2.1:5555", "X-Forwarded-Email", "alice@example.com", "X-Forwarded-Groups", "codevector:admins"), "", false, reasonUntrustedPeer},
		{"loopback, no proxy configured", untrusting, req("127.0.0.1:5555", "X-Forwarded-User", "alice", "X-Forwarded-Groups", "codevector:admins"), "", false, reasonNoProxy},
		{"no user", plain, req("10.1.2.3:5555"), "", false, reasonNoUser},
		{"spaces in user", plain, req("10.1.2.3:5555", "X-Forwarded-User", "alice example"), "", false, reasonBadUser},
	} {
		id, reason := tc.c.identityOf(tc.r)
		if reason != tc.wantReason {
			t.Errorf("%s: reason %q, want %q", tc.name, reason, tc.wantReason)
			continue
		}
		if id == nil {
			continue
		}
		if id.User != tc.wantUser || id.Admin != tc.wantAdmin {
			t.Errorf("%s: identity %+v, want %s admin=%v", tc.name, id, tc.wantUser, tc.wantAdmin)
		}
	}
	dev := &Console{opts: Options{Auth: AuthDev, AdminGroup: "codevector:admins", DevGroups: []string{"codevector:admins"}}}
	if id, _ := dev.identityOf(req("192.0.2.1:1")); id == nil || id.User != DevUser || !id.Admin {
		t.Errorf("dev mode identity %+v", id)
	}
}

func TestReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"":                        "/api-keys",
		"/api-keys?owner=bob":     "/api-keys?owner=bob",
		"/docs/":                  "/docs/",
		"/docs/./guide/../":       "/docs/",
		"/api-keys?rd=//x":        "/api-keys?rd=//x",
		"//evil.example/":         "/api-keys",
		"/\\evil.example/":        "/api-keys",
		"https://evil.example/":   "/api-keys",
		"api-keys":                "/api-keys",
		"/api-keys\r\nSet-Cookie": "/api-keys",
		// Issue 24: these pass a check of the raw value and become
		// "/\\evil.example" once http.Redirect cleans them.
		"/./\\evil.example":    "/api-keys",
		"/a/../\\evil.example": "/api-keys",
		"/.//evil.example":     "/api-keys",
		"/a/..//evil.example":  "/api-keys",
		"/./evil.example":      "/evil.example",
	} {
		if got := returnTo(in); got != want {
			t.Errorf("returnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestReturnToStaysOnSite sends hostile destinations through returnTo and
// then http.Redirect, as the callback does, and checks where a browser
// would go: the Location must resolve to this site whatever it is.
func TestReturnToStaysOnSite(t *testing.T) {
	base, _ := url.Parse("https://gateway.example.com/oauth2/callback")
	hostile := []string{
		"//evil.example", "///evil.example", "////evil.example", "/\\evil.example", "\\\\evil.example",
		"/\\/evil.example", "/./\\evil.example", "/a/../\\evil.example", "/a/b/../../\\evil.example",
		"/.//evil.example", "/a/..//evil.example", "/./../\\evil.example", "/%2e/\\evil.example",
		"/\t/evil.example", "/\n/evil.example", "/\r//evil.example", "/\x00//evil.example", "/\x7f//evil.example",
		"/\u0085//evil.example", "/\\\tevil.example", "/ /evil.example",
		"https://evil.example", "http:evil.example", "javascript:alert(1)", "data:text/html,x",
		"evil.example", ".//evil.example", "../\\evil.example", " //evil.example",
		"/%5cevil.example", "/%5Cevil.example", "/%2f/evil.example", "/%2F%2Fevil.example",
		"/@evil.example", "/\\@evil.example", "/./\\@evil.example", "/\xff/evil.example",
	}
	for _, in := range hostile {
		got := returnTo(in)
		rec := httptest.NewRecorder()
		http.Redirect(rec, httptest.NewRequest(http.MethodGet, base.String(), nil), got, http.StatusFound)
		loc := rec.Header().Get("Location")
		target, err := base.Parse(loc)
		if err != nil || target.Host != base.Host || target.Scheme != base.Scheme ||
			!strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || strings.ContainsAny(loc, "\\\t\r\n") {
			t.Errorf("returnTo(%q) = %q: Location %q leads to %v, want this site", in, got, loc, target)
		}
	}
}

func TestParseRedirectURL(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ok     bool
		secure bool
	}{
		{"https://gateway.example.com/oauth2/callback", true, true},
		{"https://gateway.example.com:8443/oauth2/callback", true, true},
		{"http://localhost:8080/oauth2/callback", true, false},
		{"http://127.0.0.1:8080/oauth2/callback", true, false},
		{"http://[::1]:8080/oauth2/callback", true, false},
		{"http://gateway.example.com/oauth2/callback", false, false},
		{"https://gateway.example.com/callback", false, false},
		{"https://gateway.example.com/oauth2/callback?x=1", false, false},
		{"/oauth2/callback", false, false},
		{"", false, false},
	} {
		_, secure, err := parseRedirectURL(tc.in)
		if (err == nil) != tc.ok || secure != tc.secure {
			t.Errorf("parseRedirectURL(%q) = secure %v, %v; want ok=%v secure=%v", tc.in, secure, err, tc.ok, tc.secure)
		}
	}
}

func TestOIDCCookieAttributes(t *testing.T) {
	key := []byte(strings.Repeat("k", 32))
	for _, tc := range []struct {
		redirect, prefix string
		secure           bool
	}{
		{"https://gateway.example.com/oauth2/callback", "__Host-", true},
		{"http://localhost:8080/oauth2/callback", "", false},
	} {
		l, err := newOIDCLogin(OIDCOptions{IssuerURL: "https://idp.example.com", ClientID: "c", ClientSecret: "s", RedirectURL: tc.redirect}, key, "codevector:admins", time.Now, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		ck := l.cookie(l.sessionCookie, "v", time.Hour)
		if !strings.HasPrefix(ck.Name, tc.prefix) || ck.Secure != tc.secure || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Domain != "" || ck.MaxAge != 3600 {
			t.Errorf("%s: session cookie %+v", tc.redirect, ck)
		}
		if st := l.cookie(l.stateName, "v", loginLifetime); !strings.HasPrefix(st.Name, tc.prefix) || st.Secure != tc.secure || !st.HttpOnly {
			t.Errorf("%s: sign-in cookie %+v", tc.redirect, st)
		}
	}
	for _, bad := range []OIDCOptions{
		{ClientID: "c", ClientSecret: "s", RedirectURL: "https://g.example.com/oauth2/callback"},
		{IssuerURL: "https://idp.example.com", ClientSecret: "s", RedirectURL: "https://g.example.com/oauth2/callback"},
		{IssuerURL: "https://idp.example.com", ClientID: "c", RedirectURL: "https://g.example.com/oauth2/callback"},
		{IssuerURL: "https://idp.example.com", ClientID: "c", ClientSecret: "s", RedirectURL: "http://g.example.com/oauth2/callback"},
	} {
		if _, err := newOIDCLogin(bad, key, "codevector:admins", time.Now, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("newOIDCLogin(%+v) accepted it", bad)
		}
	}
}

func TestEmailVerified(t *testing.T) {
	for v, want := range map[any]bool{nil: true, true: true, false: false, "true": true, "false": false, "FALSE": false} {
		if got := emailVerified(v); got != want {
			t.Errorf("emailVerified(%#v) = %v", v, got)
		}
	}
}

func TestParseCIDRs(t *testing.T) {
	got, err := ParseCIDRs("127.0.0.1/32, ::1/128,10.1.2.3, 10.9.0.0/16")
	if err != nil || len(got) != 4 || got[2].String() != "10.1.2.3/32" {
		t.Errorf("ParseCIDRs = %v, %v", got, err)
	}
	if _, err := ParseCIDRs("10.0.0.0/33"); err == nil {
		t.Error("a bad CIDR is accepted")
	}
	if got, err := ParseCIDRs(""); err != nil || got == nil || len(got) != 0 {
		t.Errorf("empty list = %v, %v; want an empty list that trusts nobody", got, err)
	}
}
