package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// runner is one part of a running gateway (docs/design.md, section 7).
// New builds each part with its inputs; Run starts the runners in order
// (Gateway.runners) and stops them in reverse, so that a part stops only
// once the parts started after it, which may still use it, have stopped.
type runner interface {
	// Name names the part in errors and logs.
	Name() string
	// Start runs the part until ctx ends and returns once it has
	// stopped: nil, or why it failed, which stops every part. A part that
	// needs another's work done first (the quota engine the first sync of
	// the keys) waits on a channel the other closes, not on the order.
	Start(ctx context.Context) error
}

// errStopping is the cause with which the runners' contexts end when Run's
// context does. Any other cause is a part's failure: a listener closes at
// once then rather than draining (httpRunner).
var errStopping = errors.New("gateway stopping")

// runAll starts runners in order, each under a context of its own that
// keeps ctx's values but not its end. Once ctx ends or a runner fails, it
// ends the runners' contexts in reverse order, waiting for each to stop
// before the next. It returns the first failure, with the runner's name.
func runAll(ctx context.Context, log *slog.Logger, runners []runner) error {
	type running struct {
		runner
		stop    context.CancelCauseFunc
		stopped chan struct{}
	}
	failed := make(chan error, len(runners))
	all := make([]running, len(runners))
	for i, r := range runners {
		rctx, stop := context.WithCancelCause(context.WithoutCancel(ctx))
		all[i] = running{runner: r, stop: stop, stopped: make(chan struct{})}
		go func() {
			defer close(all[i].stopped)
			if err := r.Start(rctx); err != nil {
				failed <- fmt.Errorf("%s: %w", r.Name(), err)
			}
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-failed:
	}
	cause := err
	if cause == nil {
		cause = errStopping
	}
	for i := len(all) - 1; i >= 0; i-- {
		all[i].stop(cause)
		<-all[i].stopped
		log.Debug("Stopped", "part", all[i].Name())
	}
	if err == nil {
		// A failure while stopping (a listener that did not close).
		select {
		case err = <-failed:
		default:
		}
	}
	return err
}

// runnerFunc is a part that is one function running until its context
// ends.
type runnerFunc struct {
	name string
	run  func(ctx context.Context)
}

func (r runnerFunc) Name() string { return r.name }

func (r runnerFunc) Start(ctx context.Context) error {
	r.run(ctx)
	return nil
}

// httpRunner serves one listener. On a clean stop it drains for up to
// drain (zero: it closes at once), then closes what is left: long streams
// do not hold up a shutdown forever.
type httpRunner struct {
	name     string
	server   *http.Server
	listener net.Listener
	drain    time.Duration
	log      *slog.Logger
	// listening is logged, with the address and attrs, once it serves.
	listening string
	attrs     []any
}

func (h *httpRunner) Name() string { return h.name }

func (h *httpRunner) Start(ctx context.Context) error {
	served := make(chan error, 1)
	go func() { served <- h.server.Serve(h.listener) }()
	h.log.Info(h.listening, append([]any{"address", h.listener.Addr().String()}, h.attrs...)...)
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if h.drain <= 0 || !errors.Is(context.Cause(ctx), errStopping) {
		// Another part failed: nothing to drain for.
		return h.server.Close()
	}
	drainCtx, stop := context.WithTimeout(context.Background(), h.drain)
	defer stop()
	err := h.server.Shutdown(drainCtx)
	if errors.Is(err, context.DeadlineExceeded) {
		return h.server.Close()
	}
	return err
}
