// Package web holds what the console and the docs pages share: the static
// assets (CSS, JavaScript, icon), the page layout, and the security headers
// every HTML response carries. Everything is embedded, so the gateway binary
// serves its pages from any directory and there is no frontend build step.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed static
var staticFS embed.FS

//go:embed templates/*.html
var layoutFS embed.FS

// AssetPrefix is the URL path under which the static assets are served.
const AssetPrefix = "/static/"

// asset is one embedded file with its content hash, which versions its URL:
// a changed file gets a new URL, so browsers may cache every URL forever.
type asset struct {
	data    []byte
	version string
	ctype   string
}

var assets = loadAssets()

func loadAssets() map[string]asset {
	out := map[string]asset{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := staticFS.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		out[strings.TrimPrefix(p, "static/")] = asset{data: data, version: hex.EncodeToString(sum[:6]), ctype: ctype}
		return nil
	})
	if err != nil {
		// The set of files is fixed at compile time: a failure is a build defect.
		panic(err)
	}
	return out
}

// Asset is the versioned URL of a static file, e.g. "/static/site.css?v=3f2a...".
// It panics on a name that is not embedded, so a typo in a template fails
// the first render in tests instead of serving a page without its styles.
func Asset(name string) string {
	a, ok := assets[name]
	if !ok {
		panic(fmt.Sprintf("web: no static asset %q", name))
	}
	return AssetPrefix + name + "?v=" + a.version
}

// Assets serves the static files under AssetPrefix. A request that names the
// current version is cacheable for a year; any other is revalidated.
func Assets() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name := strings.TrimPrefix(r.URL.Path, AssetPrefix)
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("ETag", `"`+a.version+`"`)
		if r.URL.Query().Get("v") == a.version {
			h.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			h.Set("Cache-Control", "no-cache")
		}
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
	})
}

// Page is what the layout needs from every page.
type Page struct {
	// Title goes in <title> and is the page's h1 by convention.
	Title string
	// Section highlights the top navigation: "console" or "docs".
	Section string
	// User is the signed-in user shown in the top bar (console only).
	User string
	// Admin shows an "Admin" badge next to the user.
	Admin bool
	// DevMode shows that the console runs with a fixed development user.
	DevMode bool
	// CSRFToken is put in a <meta> tag for the page's scripts to send back.
	CSRFToken string
	// SignOutURL, when set, puts a "Sign out" button next to the user: a
	// form that POSTs the CSRF token there.
	SignOutURL string
	// Scripts are page-specific static scripts, loaded after site.js.
	Scripts []string
}

// Templates parses the shared layout and then the page's own files, which
// define "main" (the body inside the layout). Each page gets its own set, so
// two pages can both define "main". funcs are available to both, next to
// "asset".
func Templates(funcs template.FuncMap, pages fs.FS, patterns ...string) (*template.Template, error) {
	t, err := template.New("layout").Funcs(template.FuncMap{"asset": Asset}).Funcs(funcs).ParseFS(layoutFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	if len(patterns) == 0 {
		return t, nil
	}
	return t.ParseFS(pages, patterns...)
}
