// Package docs serves the product documentation at /docs/: a quickstart
// and the API keys guide. Every page carries a "Your gateway URL" card;
// docs.js rewrites every route, curl example and console link on the page
// to the URL the reader pinned (kept in localStorage), or to the page's own
// origin when nothing is pinned.
package docs

import (
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/codevector/codevector/gateway/web"
)

//go:embed pages/*.html
var pagesFS embed.FS

// docPage is one page of the docs, in sidebar order.
type docPage struct {
	Slug  string
	Title string
	file  string
}

var docPages = []docPage{
	{Slug: "quickstart", Title: "Quickstart", file: "pages/quickstart.html"},
	{Slug: "api-keys", Title: "API keys", file: "pages/api-keys.html"},
}

// pageData is what every docs template renders.
type pageData struct {
	web.Page
	// Origin is the server's guess of the page's own origin, so examples
	// are right even before (or without) JavaScript.
	Origin  string
	Nav     []docPage
	Current string
}

// Docs serves /docs and everything below it.
type Docs struct {
	log      *slog.Logger
	pages    map[string]*template.Template
	notFound *template.Template
}

// New parses the pages. log may be nil.
func New(log *slog.Logger) (*Docs, error) {
	if log == nil {
		log = slog.Default()
	}
	d := &Docs{log: log, pages: map[string]*template.Template{}}
	for _, p := range docPages {
		t, err := web.Templates(nil, pagesFS, "pages/frame.html", p.file)
		if err != nil {
			return nil, fmt.Errorf("docs page %s: %w", p.Slug, err)
		}
		d.pages[p.Slug] = t
	}
	var err error
	if d.notFound, err = web.Templates(nil, pagesFS, "pages/frame.html", "pages/not-found.html"); err != nil {
		return nil, fmt.Errorf("docs page not-found: %w", err)
	}
	return d, nil
}

// Register adds the docs' routes to the gateway's router r: /docs and
// every path that starts with it, each response with the security headers.
// Only GET and HEAD find a page; any other method, like any other path,
// gets the "Page not found" page.
func (d *Docs) Register(r *mux.Router) {
	routes := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		return strings.HasPrefix(req.URL.Path, "/docs")
	}).Subrouter()
	routes.Use(web.SecureHeaders)
	first := http.RedirectHandler("/docs/"+docPages[0].Slug, http.StatusFound)
	routes.Path("/docs").Methods(http.MethodGet, http.MethodHead).Handler(first)
	routes.Path("/docs/").Methods(http.MethodGet, http.MethodHead).Handler(first)
	routes.Path("/docs/{slug}").Methods(http.MethodGet, http.MethodHead).HandlerFunc(d.servePage)
	routes.Path("/docs").HandlerFunc(d.serveNotFound)
	routes.PathPrefix("/docs/").HandlerFunc(d.serveNotFound)
	// Paths such as /docsx are not pages; they get a plain 404 (with the
	// security headers, like everything under the /docs prefix).
	routes.NewRoute().HandlerFunc(http.NotFound)
}

// NotFound answers the docs' "page not found" page, for any path no
// route of the gateway serves that a browser asked for.
func (d *Docs) NotFound(w http.ResponseWriter, r *http.Request) { d.serveNotFound(w, r) }

func (d *Docs) serveNotFound(w http.ResponseWriter, r *http.Request) {
	d.render(w, r, d.notFound, "", http.StatusNotFound)
}

func (d *Docs) servePage(w http.ResponseWriter, r *http.Request) {
	slug := mux.Vars(r)["slug"]
	t, ok := d.pages[slug]
	if !ok {
		d.render(w, r, d.notFound, "", http.StatusNotFound)
		return
	}
	d.render(w, r, t, slug, http.StatusOK)
}

func (d *Docs) render(w http.ResponseWriter, r *http.Request, t *template.Template, slug string, status int) {
	title := "Page not found"
	for _, p := range docPages {
		if p.Slug == slug {
			title = p.Title
		}
	}
	data := pageData{
		Page:    web.Page{Title: title, Section: "docs", Scripts: []string{"docs.js"}},
		Origin:  originOf(r),
		Nav:     docPages,
		Current: slug,
	}
	// Docs change only with the binary; a short cache still lets a new
	// version show up quickly after a rollout.
	w.Header().Set("Cache-Control", "private, max-age=300")
	if err := web.Render(w, t, status, data); err != nil {
		d.log.Error("Failed to render docs page", "page", slug, "error", err)
	}
}

// originOf guesses the origin the reader used. It is only ever shown to
// that same reader (escaped), and the page's script replaces it with
// location.origin or the pinned URL at once.
func originOf(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}
