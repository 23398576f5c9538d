package server

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/codevector/codevector/gateway/httperr"
)

// A replica hears of revocations from its API server watch and from its
// peers (gateway/relay). One that has heard from neither for longer than
// Options.StaleIndexAfter may be missing revocations: its index is stale.
// That is reported (/readyz, codevector_gateway_index_stale_seconds), and
// Options.StaleIndex decides whether the replica keeps serving from its
// cache (serve, fail-static, the default) or refuses every request with
// 503 until it hears again (refuse).
//
// Heard from the API server: a watch event or bookmark
// (health.watchEvent), or a successful probe of its /readyz once the
// watches are running again. Heard from a peer: any message of a peer
// that itself hears from the API server (the relay's heartbeats).

// StaleIndexMode is what a replica with a stale index does.
type StaleIndexMode string

const (
	// StaleServe keeps serving from the cached keys (fail-static): no
	// outage while the API server is away, but a key revoked meanwhile
	// may keep working on this replica until it hears again.
	StaleServe StaleIndexMode = "serve"
	// StaleRefuse refuses every proxied request (503 index_stale) and
	// reports not ready until the replica hears again: no revoked key is
	// served, at the price of an outage of this replica.
	StaleRefuse StaleIndexMode = "refuse"
)

// ParseStaleIndexMode reads --stale-index.
func ParseStaleIndexMode(s string) (StaleIndexMode, error) {
	switch m := StaleIndexMode(s); m {
	case StaleServe, StaleRefuse:
		return m, nil
	}
	return "", fmt.Errorf("%q: want serve or refuse", s)
}

// DefaultStaleIndexAfter is Options.StaleIndexAfter's default.
const DefaultStaleIndexAfter = 30 * time.Second

// heardFromAPIServer and heardFromPeer record contact, in real time.
func (h *health) heardFromAPIServer() { h.lastAPIServer.Store(time.Now().UnixNano()) }
func (h *health) heardFromPeer()      { h.lastPeer.Store(time.Now().UnixNano()) }

// lastHeard is when this replica last heard from the API server (either
// way) or from a current peer; zero before any.
func (h *health) lastHeard() time.Time {
	n := max(h.lastEvent.Load(), h.lastAPIServer.Load(), h.lastPeer.Load())
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// currentWithAPIServer reports whether this replica heard from the API
// server itself within bound: what its heartbeats to peers vouch for.
func (h *health) currentWithAPIServer(bound time.Duration) bool {
	n := max(h.lastEvent.Load(), h.lastAPIServer.Load())
	return n > 0 && time.Since(time.Unix(0, n)) <= bound
}

// staleFor is how long past the bound the index has gone unheard (how
// long it has been stale); 0 while it is not, or before the first sync.
func (g *Gateway) staleFor() time.Duration {
	if !g.health.synced.Load() {
		return 0
	}
	last := g.health.lastHeard()
	if last.IsZero() {
		return 0
	}
	if d := time.Since(last); d > g.opts.StaleIndexAfter {
		return d
	}
	return 0
}

// refuseWhileStale answers 503 for every request while the index is stale,
// in StaleRefuse mode; before authentication, so that no key is checked
// against an index that may have missed its revocation.
func (g *Gateway) refuseWhileStale(next http.Handler) http.Handler {
	if g.opts.StaleIndex != StaleRefuse {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d := g.staleFor(); d > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(max(1, int(g.opts.StaleIndexAfter/time.Second/3))))
			httperr.Write(w, http.StatusServiceUnavailable, httperr.TypeAPI, "index_stale",
				fmt.Sprintf("This gateway replica has not heard of key changes for %s, so it cannot tell whether your key was revoked; it refuses requests until it hears again. Retry, or try another replica.", d.Round(time.Second)))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// staleDetail is /readyz's line about staleness.
func (g *Gateway) staleDetail() string {
	h := g.health
	last := h.lastHeard()
	since := "never"
	if !last.IsZero() {
		since = time.Since(last).Round(time.Millisecond).String() + " ago"
	}
	if d := g.staleFor(); d > 0 {
		what := "serving from the cached keys (--stale-index=serve): a key revoked meanwhile may still work here"
		if g.opts.StaleIndex == StaleRefuse {
			what = "refusing requests (--stale-index=refuse) until it hears again"
		}
		return fmt.Sprintf("index: stale for %s (heard from neither the API server nor a current peer for more than %s; last heard %s); %s",
			d.Round(time.Millisecond), g.opts.StaleIndexAfter, since, what)
	}
	peer := "never"
	if n := h.lastPeer.Load(); n > 0 {
		peer = time.Since(time.Unix(0, n)).Round(time.Millisecond).String() + " ago"
	}
	return fmt.Sprintf("index: current (last heard %s; from a current peer %s; stale after %s)", since, peer, g.opts.StaleIndexAfter)
}

func (g *Gateway) registerStaleMetrics() {
	g.metrics.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "index_stale_seconds",
		Help: "Seconds since this replica last heard from the API server (a watch event or bookmark, or its probe) or from a peer that does, once that is longer than the stale bound (--stale-index-after); 0 while the index is current.",
	}, func() float64 { return g.staleFor().Seconds() }))
}
