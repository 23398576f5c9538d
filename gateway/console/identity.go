package console

import (
	"context"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/web"
	"github.com/codevector/codevector/keys/access"
)

// Identity is the console's user: the owner string its keys carry, and
// whether it is an admin.
type Identity struct {
	User   string
	Groups []string
	Admin  bool
}

// may tells whether id may do act to the key f now, by the rule the
// admission policies enforce (keys/access): the console acts as its
// gateway's service account, which the policies trust to check this.
func (id *Identity) may(act access.Action, f *keyindex.APIKeyFacts, now time.Time) error {
	return access.Check(id.actor(), act, access.Key{Owner: f.Owner, Status: gatewayv1alpha1.Phase(statusOf(f, now))})
}

func (id *Identity) actor() access.Actor { return access.Actor{User: id.User, Admin: id.Admin} }

type identityKey struct{}

func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// Why a request has no identity. The user sees a message for each.
const (
	reasonNoProxy         = "no-proxy"
	reasonUntrustedPeer   = "untrusted-peer"
	reasonNoUser          = "no-user"
	reasonBadUser         = "bad-user"
	reasonRepeated        = "repeated-header"
	reasonNoSession       = "no-session"
	reasonSessionExpired  = "session-expired"
	reasonSessionRejected = "session-rejected"
	reasonSignedOut       = "signed-out"
)

// identify puts the request's Identity in its context, or answers 401.
func (c *Console) identify(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, reason := c.identityOf(r)
		if id == nil {
			c.log.Debug("Refused console request without identity", "reason", reason, "remote", r.RemoteAddr, "path", r.URL.Path)
			c.unauthorized(w, r, reason)
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), identityKey{}, id)))
	})
}

func (c *Console) identityOf(r *http.Request) (*Identity, string) {
	switch c.opts.Auth {
	case AuthDev:
		return c.newIdentity(DevUser, c.opts.DevGroups), ""
	case AuthOIDC:
		// Headers mean nothing here: whoever reaches the gateway can send
		// any. Only the sealed session cookie counts.
		s, reason := c.oidc.session(r)
		if s == nil {
			return nil, reason
		}
		return c.newIdentity(s.User, s.Groups), ""
	default:
		return c.headerIdentity(r)
	}
}

// headerIdentity believes a sign-in proxy: the one configured user header,
// and groups only from the configured groups header, only from a peer in
// ProxyCIDRs. What it refuses, and why:
//   - every peer, when no proxy is configured: loopback included, since
//     `kubectl port-forward` (anyone with that right) connects from there;
//   - a second identity header (X-Forwarded-Email next to
//     X-Forwarded-User): a proxy that sets one passes the other through
//     from the client untouched;
//   - a groups header the proxy was not said to set, for the same reason:
//     the client's own X-Forwarded-Groups: codevector:admins would pass;
//   - a header present twice, or with a comma in the user: a proxy that
//     appends instead of replacing has put the client's value next to its
//     own, and which one the proxy meant cannot be told.
func (c *Console) headerIdentity(r *http.Request) (*Identity, string) {
	if len(c.opts.ProxyCIDRs) == 0 {
		return nil, reasonNoProxy
	}
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !c.trustedPeer(peer.Addr().Unmap()) {
		return nil, reasonUntrustedPeer
	}
	users := r.Header.Values(c.opts.UserHeader)
	switch {
	case len(users) == 0:
		return nil, reasonNoUser
	case len(users) > 1:
		return nil, reasonRepeated
	}
	user := strings.TrimSpace(users[0])
	if user == "" {
		return nil, reasonNoUser
	}
	if strings.Contains(user, ",") {
		return nil, reasonRepeated
	}
	if !validUser(user) {
		return nil, reasonBadUser
	}
	var groups []string
	if c.opts.GroupsHeader != "" {
		values := r.Header.Values(c.opts.GroupsHeader)
		if len(values) > 1 {
			return nil, reasonRepeated
		}
		for _, v := range values {
			for _, g := range strings.Split(v, ",") {
				if g = strings.TrimSpace(g); g != "" {
					groups = append(groups, g)
				}
			}
		}
	}
	return c.newIdentity(user, groups), ""
}

func (c *Console) newIdentity(user string, groups []string) *Identity {
	return &Identity{User: user, Groups: groups, Admin: slices.Contains(groups, c.opts.AdminGroup)}
}

func (c *Console) trustedPeer(a netip.Addr) bool {
	for _, p := range c.opts.ProxyCIDRs {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// validUser accepts what spec.owner can hold (1-253 characters) and refuses
// control characters and spaces, which no real username has.
func validUser(u string) bool {
	if len(u) > 253 {
		return false
	}
	for _, r := range u {
		if unicode.IsControl(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// unauthorizedMessage says, for the person at the console, why it does not
// know who they are and what to do about it.
func (c *Console) unauthorizedMessage(reason string) string {
	switch reason {
	case reasonNoProxy:
		return "The console is not set up to know who you are: it trusts no sign-in proxy and has no sign-in of its own. Ask your administrator to set --console-auth=oidc, or --console-proxy-cidrs for the sign-in proxy."
	case reasonUntrustedPeer:
		return "This request did not come through the sign-in proxy, so the console cannot tell who you are. Open the console through your organisation's sign-in address."
	case reasonNoUser:
		return "The sign-in proxy did not say who you are. Sign in again; if this keeps happening, ask your administrator to check that the proxy sends " + c.opts.UserHeader + "."
	case reasonBadUser:
		return "The sign-in proxy sent a user name the console cannot use. Ask your administrator to check the proxy's " + c.opts.UserHeader + " header."
	case reasonRepeated:
		return "The request named more than one user or group list, so the console cannot tell who you are. Ask your administrator to have the sign-in proxy replace identity headers rather than add to them."
	case reasonSessionExpired:
		return "Your console session has expired. Sign in again to continue."
	case reasonSessionRejected:
		return "Your console session is no longer valid (the console's key may have changed). Sign in again to continue."
	case reasonSignedOut:
		return "This console session was signed out. Sign in again to continue."
	default: // reasonNoSession
		return "You are not signed in to the console. Sign in to see and manage your API keys."
	}
}

// link is a button on a notice page.
type link struct {
	URL, Label, ID string
	Primary        bool
}

// notice is what templates/unauthorized.html renders.
type notice struct {
	web.Page
	Heading string
	Message string
	Links   []link
}

// renderNotice answers with a page that says what happened and offers links.
func (c *Console) renderNotice(w http.ResponseWriter, status int, heading, msg string, links ...link) {
	data := notice{Page: web.Page{Title: heading, Section: "console"}, Heading: heading, Message: msg, Links: links}
	if err := web.Render(w, c.unauth, status, data); err != nil {
		c.log.Error("Failed to render a console notice", "heading", heading, "error", err)
	}
}

// unauthorized answers 401: JSON for the API, a page for people. In OIDC
// mode a person opening a page is sent to sign in instead, and comes back
// to the same page after.
func (c *Console) unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	msg := c.unauthorizedMessage(reason)
	if c.oidc != nil && (reason == reasonSessionExpired || reason == reasonSessionRejected || reason == reasonSignedOut) {
		c.oidc.clearSession(w)
	}
	if isAPI(r) {
		if c.oidc != nil {
			msg += " Reload the console page to sign in."
		}
		writeError(w, &apiError{http.StatusUnauthorized, "unauthenticated", msg})
		return
	}
	if c.oidc != nil {
		signIn := SignInPath + "?rd=" + url.QueryEscape(r.URL.RequestURI())
		// Only a navigation is redirected: the page's own script fetching
		// the page again gets the 401 page (and reloads), since following
		// a redirect to the provider is what connect-src 'self' forbids.
		if r.Method == http.MethodGet && (r.Header.Get("Sec-Fetch-Mode") == "" || r.Header.Get("Sec-Fetch-Mode") == "navigate") {
			http.Redirect(w, r, signIn, http.StatusFound)
			return
		}
		c.renderNotice(w, http.StatusUnauthorized, "Sign-in required", msg, link{URL: signIn, Label: "Sign in", Primary: true, ID: "sign-in"})
		return
	}
	c.renderNotice(w, http.StatusUnauthorized, "Sign-in required", msg)
}
