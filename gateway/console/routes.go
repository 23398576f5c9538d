package console

import (
	"bytes"
	_ "embed"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/mux"

	"github.com/codevector/codevector/gateway/web"
)

// prefixes are the URL paths the console owns: every request under one of
// them is the console's to answer, 404 and 405 included, so that those too
// carry its security headers and pass its identity check first.
var prefixes = []string{"/api-keys", "/api/v1/apikeys", "/api/v1/sessions", "/oauth2/"}

// Register adds the console's routes to the gateway's router r: the page,
// the JSON API and, in OIDC mode, the sign-in routes. Every response passes
// security headers -> no-store; all but sign-in and sign-out then pass
// identity -> CSRF guard before anything else, a 404 or a 405 included.
func (c *Console) Register(r *mux.Router) {
	routes := r.MatcherFunc(func(req *http.Request, _ *mux.RouteMatch) bool {
		for _, p := range prefixes {
			if strings.HasPrefix(req.URL.Path, p) {
				return true
			}
		}
		return false
	}).Subrouter()
	routes.Use(web.SecureHeaders, c.noStore)

	// Sign-in and sign-out come before identity: they are how one gets
	// it. Other methods on these paths go on to identity, then 404.
	if c.oidc != nil {
		routes.Path(SignInPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.serveSignIn)
		routes.Path(CallbackPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.serveCallback)
		routes.Path(SignOutPath).Methods(http.MethodPost).HandlerFunc(c.serveSignOut)
		routes.Path(SignOutPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.serveSignedOut)
	}

	identified := routes.NewRoute().Subrouter()
	identified.Use(c.identify, c.guard)
	identified.Path("/api-keys").Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.servePage)
	identified.Path("/api-keys").Handler(methodNotAllowed("GET, HEAD"))
	identified.Path(rotateScriptPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(serveScript("rotate.js", rotateScript))
	identified.Path(manageScriptPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(serveScript("manage.js", manageScript))
	keys := identified.NewRoute().Subrouter()
	keys.Use(c.waitForKeys)
	keys.Path("/api/v1/apikeys").Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.serveList)
	keys.Path("/api/v1/apikeys").Methods(http.MethodPost).HandlerFunc(c.serveCreate)
	keys.Path("/api/v1/apikeys/{name}/revoke").Methods(http.MethodPost).HandlerFunc(c.serveRevoke)
	keys.Path("/api/v1/apikeys/{name}/rotate").Methods(http.MethodPost).HandlerFunc(c.serveRotate)
	keys.Path("/api/v1/apikeys/{name}/delete").Methods(http.MethodPost).HandlerFunc(c.serveDelete)
	keys.Path("/api/v1/apikeys/{name}/policy").Methods(http.MethodPost).HandlerFunc(c.serveSetPolicy)
	identified.Path(guardrailsPath).Methods(http.MethodGet, http.MethodHead).HandlerFunc(c.serveGuardrails)
	identified.Path("/api/v1/sessions/sign-out").Methods(http.MethodPost).HandlerFunc(c.serveSignOutEverywhere)
	identified.Path("/api/v1/apikeys").HandlerFunc(c.serveNoSuchEndpoint)
	identified.PathPrefix("/api/v1/apikeys/").HandlerFunc(c.serveNoSuchEndpoint)
	// The rest of the console's paths (/api-keys/..., /oauth2/... in
	// other modes): the last route, so no request leaves this router
	// without identity and guard.
	identified.NewRoute().HandlerFunc(http.NotFound)
}

// serveNoSuchEndpoint answers what the API does not have, with what it has.
func (c *Console) serveNoSuchEndpoint(w http.ResponseWriter, _ *http.Request) {
	writeError(w, &apiError{http.StatusNotFound, "not_found", "No such endpoint. The console API has GET and POST /api/v1/apikeys, POST /api/v1/apikeys/{name}/revoke, /rotate and /delete (each with ?namespace= for a key outside the console's namespace), GET /api/v1/apikeys/guardrails and (for admins) POST /api/v1/apikeys/{name}/policy."})
}

// methodNotAllowed answers 405 as net/http does, naming the methods the
// path has in Allow. (gorilla/mux's own 405 has no Allow header and would
// come before identity.)
func methodNotAllowed(allow string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Allow", allow)
		http.Error(w, http.StatusText(http.StatusMethodNotAllowed), http.StatusMethodNotAllowed)
	})
}

// The page's scripts that live with the console rather than with the
// site's assets: the rotate dialog (static/rotate.js), and delete and
// search (static/manage.js).
const (
	rotateScriptPath = "/api-keys/rotate.js"
	manageScriptPath = "/api-keys/manage.js"
)

var (
	//go:embed static/rotate.js
	rotateScript []byte
	//go:embed static/manage.js
	manageScript []byte
)

func serveScript(name string, body []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(body))
	}
}

// keysWait is how long an API request waits for a gateway that has just
// started to list every key before it is told to retry.
const keysWait = 10 * time.Second

// waitForKeys holds the console's API until the gateway holds every key:
// a list or a name looked up before would miss keys that exist.
func (c *Console) waitForKeys(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-c.keys.Listed(): // every request but those of a gateway's first seconds
			next.ServeHTTP(w, r)
			return
		default:
		}
		t := time.NewTimer(keysWait)
		defer t.Stop()
		select {
		case <-c.keys.Listed():
			next.ServeHTTP(w, r)
		case <-t.C:
			w.Header().Set("Retry-After", "5")
			writeError(w, &apiError{http.StatusServiceUnavailable, "starting", "The gateway has just started and is still loading keys. Retry in a few seconds."})
		case <-r.Context().Done():
		}
	})
}
