package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Run starts watching, serves on ln until ctx ends, then shuts down
// gracefully and flushes last-use times and usage before it returns.
func (g *Gateway) Run(ctx context.Context, ln net.Listener) error {
	started := time.Now()
	// Three lifetimes end, in this order, once ctx ends: serving (HTTP,
	// drained first, and the watches); the final flushes of last-use times
	// and usage (5 s at most each, in parallel), which then count every
	// request served and may hand their times to a peer; and the peer
	// channel. `codevector gateway` exits when Run returns, so all three
	// are over by then.
	peerCtx, stopPeers := context.WithCancel(context.WithoutCancel(ctx))
	defer stopPeers()
	flushCtx, endFlushes := context.WithCancel(context.WithoutCancel(ctx))
	var flushes sync.WaitGroup
	defer func() { endFlushes(); flushes.Wait() }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Ready once the keys are known and the quota engine counts: a replica
	// with peers first waits for their shared credential.
	quotaFailed := make(chan error, 1)
	// leaseReleased is closed once the replica's Lease is deleted: Run
	// returns only then, so that a replica stopped in a rollout is never
	// waited for by a revocation after it has gone.
	var leaseStarted atomic.Bool
	leaseReleased := make(chan struct{})
	defer func() {
		cancel()
		if leaseStarted.Load() {
			<-leaseReleased
		}
	}()
	go g.console.Run(ctx)
	go func() {
		if !g.watches.run(ctx) {
			return
		}
		if err := g.startQuota(peerCtx, g.restConfig); err != nil {
			quotaFailed <- fmt.Errorf("starting the quota engine: %w", err)
			return
		}
		g.awaitAPIKeys(ctx, started)
		// Not ready before the console knows every sign-out: a replica
		// that did not could open a session signed out elsewhere.
		select {
		case <-g.console.Synced():
		case <-ctx.Done():
			return
		}
		// Its Lease before traffic: from then on, revocations wait until
		// this replica refuses the key (gateway/replicas).
		if !g.startLease(ctx) {
			return
		}
		leaseStarted.Store(true)
		go func() {
			defer close(leaseReleased)
			g.replica.Run(ctx)
		}()
		g.health.synced.Store(true)
		g.log.Info("Watch cache synced; gateway ready", "keys", g.index.Len())
	}()
	flushes.Go(func() { g.usage.Run(flushCtx) })
	flushes.Go(func() { g.spend.Run(flushCtx) })
	go g.probeAPIServer(ctx)
	go func() {
		t := g.opts.Clock.NewTicker(time.Minute)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C():
				g.auth.Sweep()
			}
		}
	}()

	srv := &http.Server{
		Handler: g.handler,
		// Headers must arrive promptly and idle connections are reaped, so
		// slow or half-open clients cannot pin goroutines (request bodies
		// have their own deadline on every route, see withBodyDeadline;
		// and one address holds at most MaxConnsPerClient connections).
		// There is no ReadTimeout or WriteTimeout: both would cut streamed
		// completions, which run as long as they run.
		ReadHeaderTimeout: g.opts.Timeouts.ReadHeader,
		IdleTimeout:       g.opts.Timeouts.Idle,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	if g.opts.MaxConnsPerClient > 0 {
		ln = limitConnsPerClient(ln, g.opts.MaxConnsPerClient, g.connsRefused)
	}
	serveDone := make(chan error, 1)
	go func() { serveDone <- srv.Serve(ln) }()
	g.log.Info("Gateway listening", "address", ln.Addr().String(), "providers", g.opts.Providers.Names())
	if mln := g.opts.MetricsListener; mln != nil {
		metrics := &http.Server{
			Handler:           g.MetricsHandler(),
			ReadHeaderTimeout: g.opts.Timeouts.ReadHeader,
			ReadTimeout:       g.opts.Timeouts.Body,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       g.opts.Timeouts.Idle,
			MaxHeaderBytes:    8 << 10,
			ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
		}
		go func() {
			if err := metrics.Serve(mln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				select {
				case serveDone <- fmt.Errorf("metrics listener: %w", err):
				default: // the public listener failed first
				}
			}
		}()
		defer metrics.Close()
		g.log.Info("Metrics listening", "address", mln.Addr().String())
	}

	select {
	case err := <-serveDone:
		return fmt.Errorf("serving: %w", err)
	case err := <-quotaFailed:
		_ = srv.Close()
		return err
	case <-ctx.Done():
	}
	shutdownCtx, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	err := srv.Shutdown(shutdownCtx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		// Long streams do not hold up a shutdown forever.
		return srv.Close()
	}
	return err
}

// startLease writes this replica's Lease, retrying until it can or ctx
// ends: a replica that cannot (its Role lacks the leases rule) would take
// traffic that revocations do not wait for, so it does not report ready.
func (g *Gateway) startLease(ctx context.Context) bool {
	for delay := 100 * time.Millisecond; ; delay = min(2*delay, 5*time.Second) {
		err := g.replica.Start(ctx)
		if err == nil {
			return true
		}
		g.log.Error("Cannot write this replica's Lease, so it does not report ready: revocations could not wait for it", "replica", g.opts.ReplicaName, "error", err)
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

// awaitAPIKeys waits until every APIKey is listed, or until ListWait has
// passed since started: a replica whose hashes came in later than that (at
// 100,000 keys, 5-8 s) reports ready at once, since its APIKey list is
// still 10 s and more away. Real time, not the gateway's clock: it bounds
// how long the API server takes, not anything a key's lifetime depends on.
func (g *Gateway) awaitAPIKeys(ctx context.Context, started time.Time) {
	deadline := started.Add(g.opts.ListWait)
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case <-g.index.Listed():
	case <-t.C:
		g.log.Info("Ready before every APIKey is listed; the rest are read as they are used until the list is in")
	case <-ctx.Done():
	}
}
