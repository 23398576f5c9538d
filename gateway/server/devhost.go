package server

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/httperr"
)

// loopbackHostsOnly serves only requests addressed to localhost or a
// loopback address, for dev mode (--console-auth=dev), where every visitor
// is signed in as console.DevUser. Listening on loopback is not enough: a
// web page on any name can rebind that name's DNS to 127.0.0.1 and then
// read and create keys with same-origin requests, which carry its own name
// in Host. Browsers resolve localhost and *.localhost themselves, never
// through DNS, so those names cannot be rebound.
func loopbackHostsOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isLoopbackHost(r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		port := "PORT"
		if _, p, err := net.SplitHostPort(r.Host); err == nil && p != "" {
			port = p
		}
		httperr.Write(w, http.StatusMisdirectedRequest, httperr.TypeInvalidRequest, "misdirected_request",
			fmt.Sprintf("this dev-mode gateway signs every visitor in as %s, so it answers only requests addressed to localhost or a loopback address, not to %q "+
				"(a web page elsewhere could reach it through DNS rebinding); open http://localhost:%s/ instead",
				console.DevUser, truncate(r.Host, 100), port))
	})
}

// isLoopbackHost reports whether a Host header names this machine
// unambiguously: localhost, a subdomain of it, or a loopback IP literal.
func isLoopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	} else if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1] // [::1] without a port
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	addr, err := netip.ParseAddr(host)
	return err == nil && addr.Unmap().IsLoopback()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
