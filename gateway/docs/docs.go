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
	handler  http.Handler
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

	mux := http.NewServeMux()
	first := "/docs/" + docPages[0].Slug
	mux.Handle("GET /docs", http.RedirectHandler(first, http.StatusFound))
	mux.Handle("GET /docs/{$}", http.RedirectHandler(first, http.StatusFound))
	mux.HandleFunc("GET /docs/{slug}", d.servePage)
	mux.HandleFunc("/docs/", func(w http.ResponseWriter, r *http.Request) { d.render(w, r, d.notFound, "", http.StatusNotFound) })
	d.handler = web.SecureHeaders(mux)
	return d, nil
}

func (d *Docs) ServeHTTP(w http.ResponseWriter, r *http.Request) { d.handler.ServeHTTP(w, r) }

func (d *Docs) servePage(w http.ResponseWriter, r *http.Request) {
	slug := r.PathValue("slug")
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
