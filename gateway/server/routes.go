package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/httperr"
	"github.com/codevector/codevector/gateway/web"
)

// routes is the gateway's one router: the operational endpoints, the
// provider proxy behind request ID -> authenticate -> record usage, and
// the console, docs and assets for people.
func (g *Gateway) routes(p http.Handler) http.Handler {
	r := mux.NewRouter()
	// The provider proxy comes first, matched by a plain prefix test: mux
	// tries routes in order, and each path template is a regexp, which
	// every proxied request would otherwise run for the routes before it.
	r.MatcherFunc(pathUnder(proxyPrefix)).Handler(g.refuseWhileStale(g.auth.Middleware(g.recordUsage(p))))
	r.Handle("/healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") }))
	r.Handle("/readyz", http.HandlerFunc(g.readyz))
	// No /metrics here: it is on Options.MetricsListener (MetricsHandler),
	// away from whoever can reach the console.
	// For people: the console and its API, the docs, and their assets.
	g.console.Register(r)
	g.docs.Register(r)
	r.PathPrefix(web.AssetPrefix).Handler(web.Assets())
	r.Path("/").Handler(http.RedirectHandler("/api-keys", http.StatusFound))
	// Whatever no route serves: JSON that says where the providers are,
	// for clients; the docs' "page not found" for a browser on a page.
	r.NotFoundHandler = http.HandlerFunc(g.notFound)
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		httperr.Write(w, http.StatusMethodNotAllowed, httperr.TypeInvalidRequest, "method_not_allowed",
			fmt.Sprintf("%s is not allowed on %s", truncate(r.Method, 16), truncate(r.URL.Path, 128)))
	})

	var h http.Handler = r
	if g.opts.Console.Auth == console.AuthDev {
		h = loopbackHostsOnly(h)
	}
	// The body deadline comes first, on every route: a request refused
	// (401, 421) or answered without reading its body (/healthz) must not
	// hold its connection either, since the server would wait for the
	// announced body before reusing or closing it.
	// Every route then gets the same chain, outermost first: the body
	// deadline, a request ID, recovery from a panic.
	return withBodyDeadline(g.opts.Timeouts.Body, withRequestID(withRecovery(g.log, h)))
}

// notFound answers a path no route serves. A browser asking for a page
// gets the docs' HTML "page not found"; everything else, API clients
// above all, an OpenAI-style JSON error naming the URL they probably
// meant.
func (g *Gateway) notFound(w http.ResponseWriter, r *http.Request) {
	if wantsPage(r) {
		g.docs.NotFound(w, r)
		return
	}
	httperr.Write(w, http.StatusNotFound, httperr.TypeInvalidRequest, "not_found",
		g.opts.Providers.NotFoundMessage(r.Method, r.URL.Path))
}

// wantsPage reports a browser navigating to a page: a GET that accepts
// HTML, for a path that is not an API's (/v1/..., /api/...).
func wantsPage(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	for _, api := range []string{"/v1/", "/api/", "/gateway"} {
		if strings.HasPrefix(r.URL.Path, api) {
			return false
		}
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}

// proxyPrefix is where the provider proxy is served: /gateway/{provider}/...
const proxyPrefix = "/gateway/"

// pathUnder matches requests whose path starts with prefix, as
// Route.PathPrefix does, without a regexp.
func pathUnder(prefix string) mux.MatcherFunc {
	return func(r *http.Request, _ *mux.RouteMatch) bool { return strings.HasPrefix(r.URL.Path, prefix) }
}

// recordUsage notes the key's use in memory; the write to the API server
// happens later, off the request path.
func (g *Gateway) recordUsage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := auth.FromContext(r.Context()); e != nil {
			g.usage.Record(e, g.opts.Clock.Now())
		}
		next.ServeHTTP(w, r)
	})
}

// requestLogAttrs names the key of a request in logs by prefix and owner,
// never by the key itself.
func requestLogAttrs(r *http.Request) []slog.Attr {
	attrs := []slog.Attr{slog.String("requestID", r.Header.Get(requestIDHeader))}
	if e := auth.FromContext(r.Context()); e != nil {
		attrs = append(attrs, slog.String("keyPrefix", e.Prefix), slog.String("owner", e.Owner), slog.String("apikey", e.Name.String()))
	}
	return attrs
}
