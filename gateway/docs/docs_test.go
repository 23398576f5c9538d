package docs_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/codevector/codevector/gateway/docs"
	"github.com/codevector/codevector/gateway/web"
)

// newDocsServer serves the docs and their assets as the gateway routes them.
func newDocsServer(t *testing.T) *httptest.Server {
	t.Helper()
	d, err := docs.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	d.Register(r)
	r.PathPrefix(web.AssetPrefix).Handler(web.Assets())
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var (
	inlineScript  = regexp.MustCompile(`<script(\s[^>]*)?>`)
	inlineHandler = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	styleAttr     = regexp.MustCompile(`(?i)\sstyle\s*=`)
)

func TestDocsPages(t *testing.T) {
	srv := newDocsServer(t)
	for _, path := range []string{"/docs/quickstart", "/docs/api-keys"} {
		t.Run(path, func(t *testing.T) {
			resp, body := get(t, srv.URL+path)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s = %d", path, resp.StatusCode)
			}
			csp := resp.Header.Get("Content-Security-Policy")
			for _, want := range []string{"script-src 'self'", "frame-ancestors 'none'"} {
				if !strings.Contains(csp, want) {
					t.Errorf("CSP %q lacks %q", csp, want)
				}
			}
			if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
				t.Errorf("CSP allows unsafe sources: %q", csp)
			}
			if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("X-Frame-Options = %q, want DENY", got)
			}
			for _, want := range []string{"Your gateway URL", `id="gateway-url"`, "Save", "Reset", "Stored only in this browser",
				`data-gateway-path="/api-keys"`, srv.URL + `</span>/gateway/openai/v1/chat/completions`} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			for _, m := range inlineScript.FindAllString(body, -1) {
				if !strings.Contains(m, "src=") {
					t.Errorf("inline script: %s", m)
				}
			}
			if inlineHandler.MatchString(body) || styleAttr.MatchString(body) {
				t.Errorf("page has an inline event handler or style attribute (the CSP would block it)")
			}
		})
	}
}

func TestDocsRoutes(t *testing.T) {
	srv := newDocsServer(t)
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, path := range []string{"/docs", "/docs/"} {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/docs/quickstart" {
			t.Errorf("GET %s = %d to %q, want a redirect to /docs/quickstart", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, body := get(t, srv.URL+"/docs/nope")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "Page not found") {
		t.Errorf("GET /docs/nope = %d, want the docs' 404 page", resp.StatusCode)
	}
	resp, _ = get(t, srv.URL+web.Asset("docs.js"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Cache-Control"), "immutable") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("versioned asset: %d %q %q", resp.StatusCode, resp.Header.Get("Cache-Control"), resp.Header.Get("Content-Type"))
	}
}
