package console_test

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/server"
)

func TestAPIRefusesCrossSiteAndTokenlessChanges(t *testing.T) {
	s := startStack(t, true, nil)
	alice, bob := s.as("alice@example.com"), s.as("bob@example.com")
	alice.page(t, "")
	bob.page(t, "")
	body := map[string]any{"displayName": "should not exist"}
	for _, tc := range []struct {
		name   string
		mutate func(*http.Request)
		status int
		code   string
	}{
		{"no token", func(r *http.Request) { r.Header.Del("X-CSRF-Token") }, http.StatusForbidden, "csrf_failed"},
		{"garbage token", func(r *http.Request) { r.Header.Set("X-CSRF-Token", "123.abc") }, http.StatusForbidden, "csrf_failed"},
		{"another user's token", func(r *http.Request) { r.Header.Set("X-CSRF-Token", bob.token) }, http.StatusForbidden, "csrf_failed"},
		{"cross-site fetch", func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") }, http.StatusForbidden, "cross_origin"},
		{"another origin", func(r *http.Request) {
			r.Header.Del("Sec-Fetch-Site")
			r.Header.Set("Origin", "https://evil.example")
		}, http.StatusForbidden, "cross_origin"},
		{"form post", func(r *http.Request) { r.Header.Set("Content-Type", "application/x-www-form-urlencoded") }, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"text/plain", func(r *http.Request) { r.Header.Set("Content-Type", "text/plain") }, http.StatusUnsupportedMediaType, "unsupported_media_type"},
	} {
		r := alice.do(t, http.MethodPost, "/api/v1/apikeys", body, tc.mutate)
		if r.Status != tc.status || r.errorCode() != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.Status, r.Body, tc.status, tc.code)
		}
	}
	if l, _ := alice.list(t, ""); len(l.Items) != 0 {
		t.Fatalf("refused requests created keys: %v", names(l.Items))
	}

	// Revocation is guarded the same way.
	c, _ := alice.create(t, map[string]any{"displayName": "guarded"})
	r := alice.do(t, http.MethodPost, "/api/v1/apikeys/"+c.APIKey.Name+"/revoke", map[string]any{}, func(r *http.Request) { r.Header.Set("X-CSRF-Token", bob.token) })
	if r.Status != http.StatusForbidden {
		t.Errorf("revoke with bob's token: %d %s", r.Status, r.Body)
	}
	if status := s.chat(t, c.Key); status != http.StatusOK {
		t.Errorf("the key stopped working after a refused revoke: %d", status)
	}
	// Reads are never state changes: GET cannot revoke.
	if r := alice.do(t, http.MethodGet, "/api/v1/apikeys/"+c.APIKey.Name+"/revoke", nil); r.Status == http.StatusOK {
		t.Errorf("GET .../revoke = %d", r.Status)
	}

	// So is deletion: another user's token, a GET and another user are
	// refused, and the key stays; its owner deletes it (once revoked).
	del := "/api/v1/apikeys/" + c.APIKey.Name + "/delete?namespace=" + s.Namespace
	// A key that works is revoked first (the revocation is what the
	// replicas confirm), not deleted.
	if r := alice.do(t, http.MethodPost, del, map[string]any{}); r.Status != http.StatusConflict || r.errorCode() != "still_works" {
		t.Errorf("deleting an active key: %d %s", r.Status, r.Body)
	}
	if r := alice.revoke(t, c.APIKey.Name); r.Status != http.StatusOK {
		t.Fatalf("revoking: %d %s", r.Status, r.Body)
	}
	if r := alice.do(t, http.MethodPost, del, map[string]any{}, func(r *http.Request) { r.Header.Set("X-CSRF-Token", bob.token) }); r.Status != http.StatusForbidden {
		t.Errorf("delete with bob's token: %d %s", r.Status, r.Body)
	}
	if r := alice.do(t, http.MethodGet, del, nil); r.Status == http.StatusOK {
		t.Errorf("GET .../delete = %d", r.Status)
	}
	if r := bob.do(t, http.MethodPost, del, map[string]any{}); r.Status != http.StatusNotFound {
		t.Errorf("bob deleting alice's key: %d %s", r.Status, r.Body)
	}
	if k := storedKey(t, s.Namespace, c.APIKey.Name); k.DeletionTimestamp != nil {
		t.Fatal("a refused delete deleted the key")
	}
	if r := alice.do(t, http.MethodPost, del, map[string]any{}); r.Status != http.StatusOK {
		t.Errorf("alice deleting her revoked key: %d %s", r.Status, r.Body)
	}
}

func TestConsoleRefusesUntrustedProxy(t *testing.T) {
	s := startStack(t, false, func(o *server.Options) {
		o.Console.ProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	})
	// The test client is on 127.0.0.1, not the proxy's network: its
	// identity headers, admin group included, count for nothing.
	mallory := s.as("alice@example.com", "codevector:admins")
	page := mallory.do(t, http.MethodGet, "/api-keys", nil)
	if page.Status != http.StatusUnauthorized || !strings.HasPrefix(page.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("page from an untrusted peer: %d %s", page.Status, page.Header.Get("Content-Type"))
	}
	for _, want := range []string{"Sign-in required", "did not come through the sign-in proxy"} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the 401 page lacks %q", want)
		}
	}
	if strings.Contains(page.String(), "alice@example.com") || strings.Contains(page.String(), "csrf-token") {
		t.Error("the 401 page shows the claimed user or a CSRF token")
	}
	api := mallory.do(t, http.MethodGet, "/api/v1/apikeys", nil)
	if api.Status != http.StatusUnauthorized || api.errorCode() != "unauthenticated" {
		t.Errorf("API from an untrusted peer: %d %s", api.Status, api.Body)
	}
	create := mallory.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{})
	if create.Status != http.StatusUnauthorized {
		t.Errorf("create from an untrusted peer: %d %s", create.Status, create.Body)
	}
}

func TestConsoleWithoutIdentityAndSecurityHeaders(t *testing.T) {
	s := startStack(t, false, nil)
	anonymous := s.as("")
	page := anonymous.do(t, http.MethodGet, "/api-keys", nil)
	if page.Status != http.StatusUnauthorized || !strings.Contains(page.String(), "did not say who you are") {
		t.Errorf("page without identity: %d\n%s", page.Status, page.Body)
	}
	alice := s.as("alice@example.com")
	ok := alice.page(t, "")
	if ok.Status != http.StatusOK || !strings.Contains(ok.String(), "No API keys yet") {
		t.Errorf("empty page: %d", ok.Status)
	}
	for _, r := range []response{page, ok, alice.do(t, http.MethodGet, "/api/v1/apikeys", nil)} {
		csp := r.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "script-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("CSP %q", csp)
		}
		if r.Header.Get("X-Frame-Options") != "DENY" || r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("headers %v", r.Header)
		}
	}
	if strings.Contains(ok.String(), "<script>") || strings.Contains(ok.String(), " style=") || strings.Contains(ok.String(), " onclick=") {
		t.Error("the page has inline script or style, which the CSP forbids")
	}

	// The gateway serves the docs and the assets next to the console, and
	// sends visitors of its root to the console.
	for path, want := range map[string]int{"/docs/api-keys": http.StatusOK, "/static/console.js": http.StatusOK, "/static/nope.js": http.StatusNotFound} {
		if r := anonymous.do(t, http.MethodGet, path, nil); r.Status != want {
			t.Errorf("GET %s = %d, want %d", path, r.Status, want)
		}
	}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Get(s.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/api-keys" {
		t.Errorf("GET / = %d to %q, want a redirect to /api-keys", resp.StatusCode, resp.Header.Get("Location"))
	}
}

// A display name full of markup is text everywhere the page shows it.
func TestPageEscapesNames(t *testing.T) {
	s := startStack(t, true, nil)
	alice := s.as("alice@example.com")
	const evil = `<img src=x onerror=alert(1)>`
	c, _ := alice.create(t, map[string]any{"displayName": evil})
	if c.APIKey.DisplayName != evil {
		t.Errorf("display name stored as %q", c.APIKey.DisplayName)
	}
	page := alice.page(t, "").String()
	if strings.Contains(page, "<img src=x") {
		t.Error("the page contains the name as markup")
	}
	for _, want := range []string{`&lt;img src=x onerror=alert(1)&gt;`, `aria-label="Actions for &lt;img src=x onerror=alert(1)&gt;"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks the escaped name %q", want)
		}
	}
}
