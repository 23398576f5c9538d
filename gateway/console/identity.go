package console

import (
	"context"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"unicode"

	"github.com/codevector/codevector/gateway/web"
)

// Identity is the console's user: the owner string its keys carry, and
// whether it is an admin.
type Identity struct {
	User   string
	Groups []string
	Admin  bool
}

// mayManage tells whether id may see and revoke a key owned by owner.
func (id *Identity) mayManage(owner string) bool { return id.Admin || owner == id.User }

type identityKey struct{}

func identityFrom(ctx context.Context) *Identity {
	id, _ := ctx.Value(identityKey{}).(*Identity)
	return id
}

// Header names of the oauth2-proxy convention.
const (
	headerUser   = "X-Forwarded-User"
	headerEmail  = "X-Forwarded-Email"
	headerGroups = "X-Forwarded-Groups"
)

// Why a request has no identity. The user sees a message for each.
const (
	reasonUntrustedPeer = "untrusted-peer"
	reasonNoUser        = "no-user"
	reasonBadUser       = "bad-user"
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
	if c.opts.Auth == AuthDev {
		return c.newIdentity(DevUser, c.opts.DevGroups), ""
	}
	// The headers are only as trustworthy as whoever set them: anyone can
	// send X-Forwarded-User, so only the sign-in proxy's address counts.
	peer, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !c.trustedPeer(peer.Addr().Unmap()) {
		return nil, reasonUntrustedPeer
	}
	// The email is preferred: it is what Kubernetes usernames from an OIDC
	// provider usually are, so console keys and kubectl keys share an owner.
	user := strings.TrimSpace(r.Header.Get(headerEmail))
	if user == "" {
		user = strings.TrimSpace(r.Header.Get(headerUser))
	}
	if user == "" {
		return nil, reasonNoUser
	}
	if !validUser(user) {
		return nil, reasonBadUser
	}
	var groups []string
	for _, g := range strings.Split(r.Header.Get(headerGroups), ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
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

var unauthorizedMessages = map[string]string{
	reasonUntrustedPeer: "This request did not come through the sign-in proxy, so the console cannot tell who you are. Open the console through your organisation's sign-in address.",
	reasonNoUser:        "The sign-in proxy did not say who you are. Sign in again; if this keeps happening, ask your administrator to check that the proxy sends X-Forwarded-User or X-Forwarded-Email.",
	reasonBadUser:       "The sign-in proxy sent a user name the console cannot use. Ask your administrator to check the proxy's X-Forwarded-User and X-Forwarded-Email headers.",
}

// unauthorized answers 401: JSON for the API, a page for people.
func (c *Console) unauthorized(w http.ResponseWriter, r *http.Request, reason string) {
	msg := unauthorizedMessages[reason]
	if isAPI(r) {
		writeError(w, &apiError{http.StatusUnauthorized, "unauthenticated", msg})
		return
	}
	data := struct {
		web.Page
		Message string
	}{web.Page{Title: "Sign-in required", Section: "console"}, msg}
	if err := web.Render(w, c.unauth, http.StatusUnauthorized, data); err != nil {
		c.log.Error("Failed to render the sign-in page", "error", err)
	}
}
