package auth

import (
	"net/http"
	"net/netip"
	"strings"
)

// clientAddress is the unit of per-client limits: the client's IPv4
// address, or its IPv6 /64 (one host usually holds a whole /64, and could
// otherwise make a fresh bucket per request). The client is the peer,
// unless the peer is a trusted proxy: then it is the rightmost address of
// X-Forwarded-For that is not a trusted proxy (the entries left of it were
// written by the client and prove nothing).
func (a *Authenticator) clientAddress(r *http.Request) string {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	addr := ap.Addr().Unmap()
	if a.isTrustedProxy(addr) {
		addr = a.forwardedClient(r.Header.Values("X-Forwarded-For"), addr)
	}
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return p.String()
	}
	return addr.String()
}

// forwardedClient walks X-Forwarded-For from the right, past trusted
// proxies, to the first address that is not one. A hop that does not parse
// ends the walk at the last proxy that was trusted.
func (a *Authenticator) forwardedClient(headers []string, peer netip.Addr) netip.Addr {
	client := peer
	for i := len(headers) - 1; i >= 0; i-- {
		hops := strings.Split(headers[i], ",")
		for j := len(hops) - 1; j >= 0; j-- {
			hop, err := netip.ParseAddr(strings.TrimSpace(hops[j]))
			if err != nil {
				return client
			}
			client = hop.Unmap()
			if !a.isTrustedProxy(client) {
				return client
			}
		}
	}
	return client
}

func (a *Authenticator) isTrustedProxy(addr netip.Addr) bool {
	for _, p := range a.trusted {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}
