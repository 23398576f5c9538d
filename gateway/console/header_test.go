package console_test

// Header mode, hardened (issue 11): identity headers count only from
// configured proxy addresses (none by default, loopback included), only the
// one user header names the user, groups never come from a header the
// operator did not name, and a repeated identity header is refused. These
// tests set nothing but the proxy addresses, so they run against the
// defaults an operator gets.

import (
	"io"
	"net/http"
	"net/netip"
	"regexp"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
)

// headerStack is a gateway whose console has the default header-mode
// options, trusting the proxies in cidrs (none when empty).
func headerStack(t *testing.T, withManager bool, cidrs ...string) *stack {
	t.Helper()
	return startStack(t, withManager, func(o *server.Options) {
		o.Console = console.Options{Namespace: o.Console.Namespace}
		for _, c := range cidrs {
			o.Console.ProxyCIDRs = append(o.Console.ProxyCIDRs, netip.MustParsePrefix(c))
		}
	})
}

var loopback = []string{"127.0.0.1/32", "::1/128"}

// send makes one request carrying headers (name, value pairs, added in
// order, so a name may repeat) and returns the status and body.
func send(t *testing.T, method, url string, body string, headers ...string) (int, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var whoami = regexp.MustCompile(`<span class="whoami-name">([^<]*)</span>`)

func TestHeaderModeTrustsNoPeerByDefault(t *testing.T) {
	s := headerStack(t, false)
	// The test client is on 127.0.0.1, as `kubectl port-forward` is.
	for _, path := range []string{"/api/v1/apikeys", "/api-keys"} {
		status, body := send(t, http.MethodGet, s.URL+path, "", "X-Forwarded-User", "alice@example.com", "X-Forwarded-Groups", "codevector:admins")
		if status != http.StatusUnauthorized {
			t.Errorf("GET %s from loopback with no proxy configured: %d, want 401\n%.300s", path, status, body)
		}
		if path == "/api-keys" && !strings.Contains(body, "trusts no sign-in proxy") {
			t.Errorf("the 401 page does not say that no proxy is trusted:\n%.600s", body)
		}
	}
}

func TestHeaderModeRefusesRepeatedIdentityHeaders(t *testing.T) {
	s := headerStack(t, false, loopback...)
	if status, body := send(t, http.MethodGet, s.URL+"/api/v1/apikeys", "", "X-Forwarded-User", "alice@example.com"); status != http.StatusOK {
		t.Fatalf("one user header from the trusted proxy: %d %s", status, body)
	}
	for name, headers := range map[string][]string{
		"two user headers":          {"X-Forwarded-User", "alice@example.com", "X-Forwarded-User", "mallory@example.com"},
		"two spellings":             {"x-forwarded-user", "mallory@example.com", "X-Forwarded-User", "alice@example.com"},
		"two users joined by comma": {"X-Forwarded-User", "alice@example.com,mallory@example.com"},
	} {
		status, body := send(t, http.MethodGet, s.URL+"/api/v1/apikeys", "", headers...)
		if status != http.StatusUnauthorized || !strings.Contains(body, `"unauthenticated"`) {
			t.Errorf("%s: %d %s, want 401 unauthenticated", name, status, body)
		}
	}
}

func TestHeaderModeEmailDoesNotOverrideUser(t *testing.T) {
	s := headerStack(t, false, loopback...)
	status, body := send(t, http.MethodGet, s.URL+"/api-keys", "", "X-Forwarded-User", "alice@example.com", "X-Forwarded-Email", "mallory@example.com")
	if status != http.StatusOK {
		t.Fatalf("page: %d\n%.300s", status, body)
	}
	if m := whoami.FindStringSubmatch(body); m == nil || m[1] != "alice@example.com" {
		t.Errorf("signed in as %q, want alice@example.com (the user header, not X-Forwarded-Email)", m)
	}
	// X-Forwarded-Email alone names nobody.
	if status, _ := send(t, http.MethodGet, s.URL+"/api/v1/apikeys", "", "X-Forwarded-Email", "mallory@example.com"); status != http.StatusUnauthorized {
		t.Errorf("X-Forwarded-Email alone: %d, want 401", status)
	}
}

func TestHeaderModeIgnoresGroupsHeaderUnlessConfigured(t *testing.T) {
	s := headerStack(t, true, loopback...)
	bobs := kubectlKey(t, s.Namespace, "", "bob@example.com", "bob's laptop")

	// Mallory claims the admin group in a header the operator never named.
	mallory := []string{"X-Forwarded-User", "mallory@example.com", "X-Forwarded-Groups", "codevector:admins"}
	status, page := send(t, http.MethodGet, s.URL+"/api-keys?owner=bob@example.com", "", mallory...)
	if status != http.StatusOK {
		t.Fatalf("page: %d", status)
	}
	if strings.Contains(page, `class="badge">Admin<`) || strings.Contains(page, bobs.Name) {
		t.Error("a groups header nobody configured made mallory an admin who sees bob's key")
	}
	status, list := send(t, http.MethodGet, s.URL+"/api/v1/apikeys?owner=bob@example.com", "", mallory...)
	if status != http.StatusOK || strings.Contains(list, bobs.Name) || strings.Contains(list, `"owners"`) {
		t.Errorf("list as a self-declared admin: %d %s", status, list)
	}
	m := csrfMeta.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page has no CSRF token")
	}
	status, body := send(t, http.MethodPost, s.URL+"/api/v1/apikeys/"+bobs.Name+"/revoke", "{}", append(mallory,
		"Content-Type", "application/json", "X-CSRF-Token", m[1], "Origin", s.URL, "Sec-Fetch-Site", "same-origin")...)
	if status != http.StatusNotFound {
		t.Errorf("mallory revoking bob's key: %d %s, want 404", status, body)
	}
}
