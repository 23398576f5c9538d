package server

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/discovery"

	"github.com/codevector/codevector/gateway/keyindex"
)

// health is what /readyz and the health metrics report.
type health struct {
	synced          atomic.Bool
	lastEvent       atomic.Int64 // unix nanoseconds of the last watch event
	apiReachable    atomic.Bool
	unreachableFrom atomic.Int64 // unix nanoseconds; 0 while reachable
	// lastAPIServer and lastPeer: unix nanoseconds of the last successful
	// probe with the watches running, and of the last message of a current
	// peer (stale.go).
	lastAPIServer atomic.Int64
	lastPeer      atomic.Int64
}

func (h *health) watchEvent() { h.lastEvent.Store(time.Now().UnixNano()) }

// readyz is 503 until the first sync of the watch cache, so no replica
// takes traffic knowing no keys. After that it stays 200 even when the API
// server is unreachable (fail-static: the cached keys keep working, and
// revocations resume the moment the watch does) and says so in its body.
//
// The body says why only to a caller on loopback (kubectl port-forward, a
// shell in the pod) that no proxy forwarded: everyone else, the kubelet
// and key holders through the ingress alike, gets the status and "ok" or
// "not ready". Whether the API server is reachable tells the holder of a
// revoked key when the gateway cannot hear of revocations. Operators also
// have the metric codevector_gateway_apiserver_reachable.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	h := g.health
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	detail := isLocalCaller(r)
	if !h.synced.Load() {
		w.WriteHeader(http.StatusServiceUnavailable)
		if detail {
			fmt.Fprintln(w, "not ready: waiting for the first sync of APIKeys and hash Secrets")
		} else {
			fmt.Fprintln(w, "not ready")
		}
		return
	}
	if g.opts.StaleIndex == StaleRefuse && g.staleFor() > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		if detail {
			fmt.Fprintln(w, "not ready:", g.staleDetail())
		} else {
			fmt.Fprintln(w, "not ready")
		}
		return
	}
	if !detail {
		fmt.Fprintln(w, "ok")
		return
	}
	fmt.Fprintf(w, "ready: %d keys indexed\n", g.index.Len())
	fmt.Fprintln(w, g.staleDetail())
	if h.apiReachable.Load() {
		fmt.Fprintln(w, "apiserver: reachable")
	} else {
		since := time.Unix(0, h.unreachableFrom.Load()).UTC().Format(time.RFC3339)
		fmt.Fprintf(w, "apiserver: unreachable since %s; fail-static: serving from the cached keys, revocations apply when the watch resumes\n", since)
	}
	if t := h.lastEvent.Load(); t > 0 {
		fmt.Fprintf(w, "last watch event: %s ago\n", time.Since(time.Unix(0, t)).Round(time.Millisecond))
	}
}

// apiServerProbe checks the API server's /readyz every interval, for
// /readyz and the metrics, and replaces the watches when it is back after
// an outage (watches.go).
type apiServerProbe struct {
	client   discovery.DiscoveryInterface
	interval time.Duration
	watches  *watches
	index    *keyindex.Index
	health   *health
	log      *slog.Logger
}

func (g *Gateway) apiServerProbe() *apiServerProbe {
	return &apiServerProbe{client: g.probe, interval: g.opts.APIServerProbeInterval, watches: g.watches, index: g.index, health: g.health, log: g.log}
}

// run probes until ctx ends.
func (p *apiServerProbe) run(ctx context.Context) {
	h := p.health
	h.apiReachable.Store(true)
	for {
		probeCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
		// /readyz, not /version: a restarted API server answers /version
		// before it serves custom resources again, and watches started
		// then would only fail and back off.
		err := p.client.RESTClient().Get().AbsPath("/readyz").Do(probeCtx).Error()
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case err == nil && !h.apiReachable.Load():
			p.log.Info("API server reachable again; restarting watches")
			if err := p.watches.restart(ctx); err != nil {
				if ctx.Err() != nil {
					return
				}
				p.log.Warn("Failed to restart watches after the API server came back; retrying", "error", err)
				break
			}
			h.apiReachable.Store(true)
			h.unreachableFrom.Store(0)
			p.log.Info("Watches restarted; index current again", "keys", p.index.Len())
		case err != nil && h.apiReachable.Load():
			h.apiReachable.Store(false)
			h.unreachableFrom.Store(time.Now().UnixNano())
			p.log.Warn("API server unreachable; serving cached keys (fail-static)", "error", err)
		}
		if err == nil && h.apiReachable.Load() {
			h.heardFromAPIServer()
		}
		// While the API server is away, look often: the sooner recovery is
		// seen, the sooner watches restart and revocations apply again.
		wait := p.interval
		if !h.apiReachable.Load() {
			wait = min(wait, 500*time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

func (g *Gateway) registerHealthMetrics() {
	h := g.health
	g.metrics.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apiserver_reachable",
			Help: "1 while the API server answers; 0 while the gateway serves from its cache alone (fail-static).",
		}, func() float64 { return boolFloat(h.apiReachable.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "cache_synced",
			Help: "1 once the first sync is done: every hash Secret listed and the APIKey watches open (the gateway is ready then).",
		}, func() float64 { return boolFloat(h.synced.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "apikeys_listed",
			Help: "1 once every APIKey is in the index; until then, after a start, an APIKey not listed yet is read from the API server on its first request.",
		}, func() float64 {
			select {
			case <-g.index.Listed():
				return 1
			default:
				return 0
			}
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "last_watch_event_age_seconds",
			Help: "Seconds since the last watch event on APIKeys or hash Secrets (-1 before the first).",
		}, func() float64 {
			if t := h.lastEvent.Load(); t > 0 {
				return time.Since(time.Unix(0, t)).Seconds()
			}
			return -1
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "indexed_keys",
			Help: "Key IDs in the gateway's index.",
		}, func() float64 { return float64(g.index.Len()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "keyid_conflicts",
			Help: "Key IDs claimed by more than one APIKey or more than one hash Secret; the first claimant keeps each, the others are refused (see the gateway's warnings).",
		}, func() float64 { return float64(g.index.Conflicts()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "verified_keys",
			Help: "Keys in the verified-key cache.",
		}, func() float64 { return float64(g.auth.VerifiedKeys()) }),
	)
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// isLocalCaller reports a request from this machine's loopback that no
// proxy forwarded (a sign-in sidecar on loopback relays outside callers,
// and says so in X-Forwarded-For, Forwarded or X-Real-IP).
func isLocalCaller(r *http.Request) bool {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil || !ap.Addr().Unmap().IsLoopback() {
		return false
	}
	h := r.Header
	return h.Get("X-Forwarded-For") == "" && h.Get("Forwarded") == "" && h.Get("X-Real-Ip") == ""
}
