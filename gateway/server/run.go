package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"time"

	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/gateway/usage"
)

// Run serves on ln until ctx ends, then stops gracefully: it starts the
// gateway's runners (Gateway.runners) and stops them in reverse order, so
// last-use times and usage are flushed after the last request is served
// and before the peer mesh closes. An error from any runner stops them
// all, and Run returns it.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	return runAll(ctx, g.log, g.runners(ln))
}

// runners are the gateway's parts in the order they start; they stop in
// reverse. The three lifetimes of a replica's stop follow from it: first
// serving (the public listener drains, then the readiness and Lease, the
// console, the watches; the metrics listener closes), then the final
// flushes of last-use times and usage (5 s at most each, in parallel),
// which then count every request served and may hand their times to a
// peer, and last the peer mesh. `codevector gateway` exits when Run
// returns, so all three are over by then.
func (g *Gateway) runners(ln net.Listener) []runner {
	keysSynced, quotaStarted := make(chan struct{}), make(chan struct{})
	rs := []runner{
		g.newQuotaRunner(keysSynced, quotaStarted),
		runnerFunc{name: "concurrency slots", run: g.meter.Run},
		&usageRunner{lastUsed: g.usage, spend: g.spend},
	}
	if mln := g.opts.MetricsListener; mln != nil {
		rs = append(rs, &httpRunner{
			name: "metrics listener", server: g.metricsServer(), listener: mln,
			log: g.log, listening: "Metrics listening",
		})
	}
	rs = append(rs,
		&keysRunner{watches: g.watches, synced: keysSynced, probe: g.apiServerProbe()},
		runnerFunc{name: "console", run: g.console.Run},
		runnerFunc{name: "auth sweep", run: func(ctx context.Context) { sweepAuth(ctx, g.opts.Clock, g.auth) }},
		&readinessRunner{
			quotaStarted: quotaStarted, consoleSynced: g.console.Synced(), index: g.index, listWait: g.opts.ListWait,
			replica: g.replica, replicaName: g.opts.ReplicaName, health: g.health, log: g.log,
		},
	)
	if g.opts.MaxConnsPerClient > 0 {
		ln = limitConnsPerClient(ln, g.opts.MaxConnsPerClient, g.connsRefused)
	}
	return append(rs, &httpRunner{
		name: "public listener", server: g.publicServer(), listener: ln, drain: 10 * time.Second,
		log: g.log, listening: "Gateway listening", attrs: []any{"providers", g.opts.Providers.Names()},
	})
}

// publicServer serves the gateway's routes. Headers must arrive promptly
// and idle connections are reaped, so slow or half-open clients cannot pin
// goroutines (request bodies have their own deadline on every route, see
// withBodyDeadline; and one address holds at most MaxConnsPerClient
// connections). There is no ReadTimeout or WriteTimeout: both would cut
// streamed completions, which run as long as they run.
func (g *Gateway) publicServer() *http.Server {
	return &http.Server{
		Handler:           g.handler,
		ReadHeaderTimeout: g.opts.Timeouts.ReadHeader,
		IdleTimeout:       g.opts.Timeouts.Idle,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// metricsServer serves MetricsHandler; its answers are small, so it has
// every timeout.
func (g *Gateway) metricsServer() *http.Server {
	return &http.Server{
		Handler:           g.MetricsHandler(),
		ReadHeaderTimeout: g.opts.Timeouts.ReadHeader,
		ReadTimeout:       g.opts.Timeouts.Body,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       g.opts.Timeouts.Idle,
		MaxHeaderBytes:    8 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
}

// usageRunner flushes last-use times and spend every interval, and once
// more, a few seconds at most each and in parallel, when it stops.
type usageRunner struct {
	lastUsed *usage.Recorder
	spend    *usage.SpendRecorder
}

func (*usageRunner) Name() string { return "usage" }

func (u *usageRunner) Start(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		u.spend.Run(ctx)
	}()
	u.lastUsed.Run(ctx)
	<-done
	return nil
}

// sweepAuth drops the authenticator's expired rate-limit state (failure
// limiter and tarpit) every minute.
func sweepAuth(ctx context.Context, clk clock.WithTicker, a *auth.Authenticator) {
	t := clk.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			a.Sweep()
		}
	}
}

// readinessRunner makes the replica ready once the keys are known and the
// quota engine counts (a replica with peers first waits for their shared
// credential), then keeps its Lease until it stops. It returns only once
// the Lease is deleted, so that a replica stopped in a rollout is never
// waited for by a revocation after it has gone.
type readinessRunner struct {
	quotaStarted  <-chan struct{}
	consoleSynced <-chan struct{}
	index         *keyindex.Index
	listWait      time.Duration
	replica       *replicas.Publisher
	replicaName   string
	health        *health
	log           *slog.Logger
}

func (*readinessRunner) Name() string { return "readiness" }

func (r *readinessRunner) Start(ctx context.Context) error {
	started := time.Now()
	select {
	case <-r.quotaStarted:
	case <-ctx.Done():
		return nil
	}
	r.awaitAPIKeys(ctx, started)
	// Not ready before the console knows every sign-out: a replica that
	// did not could open a session signed out elsewhere.
	select {
	case <-r.consoleSynced:
	case <-ctx.Done():
		return nil
	}
	// Its Lease before traffic: from then on, revocations wait until this
	// replica refuses the key (gateway/replicas).
	if !r.startLease(ctx) {
		return nil
	}
	r.health.synced.Store(true)
	r.log.Info("Watch cache synced; gateway ready", "keys", r.index.Len())
	r.replica.Run(ctx)
	return nil
}

// startLease writes this replica's Lease, retrying until it can or ctx
// ends: a replica that cannot (its Role lacks the leases rule) would take
// traffic that revocations do not wait for, so it does not report ready.
func (r *readinessRunner) startLease(ctx context.Context) bool {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := r.replica.Start(ctx)
		if err == nil {
			return true
		}
		r.log.Error("Cannot write this replica's Lease, so it does not report ready: revocations could not wait for it", "replica", r.replicaName, "error", err)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(delay):
		}
	}
}

// DefaultListWait is Options.ListWait's default. Up to about 20,000 keys
// the APIKey list is in by then even while the API server serves other
// replicas' lists, so a new replica takes no traffic before it has it, and
// its first requests do not each wait on a read of their APIKey from a
// busy API server (the slowest seconds of a rollout at 10,000 keys,
// docs/benchmarks.md, "Rollout"). At 100,000 the list takes 15 s and more: readiness waits
// for it no longer than this, which keeps a start within 10 s.
const DefaultListWait = 7 * time.Second

// awaitAPIKeys waits until every APIKey is listed, or until listWait has
// passed since started: a replica whose hashes came in later than that (at
// 100,000 keys, 5-8 s) reports ready at once, since its APIKey list is
// still 10 s and more away. Real time, not the gateway's clock: it bounds
// how long the API server takes, not anything a key's lifetime depends on.
func (r *readinessRunner) awaitAPIKeys(ctx context.Context, started time.Time) {
	t := time.NewTimer(time.Until(started.Add(r.listWait)))
	defer t.Stop()
	select {
	case <-r.index.Listed():
	case <-t.C:
		r.log.Info("Ready before every APIKey is listed; the rest are read as they are used until the list is in")
	case <-ctx.Done():
	}
}
