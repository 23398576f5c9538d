package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/codevector/codevector/gateway/keyindex"
)

// watches runs the gateway's watches and can replace them with fresh ones.
// Why replace: after an API server outage, client-go's reflectors retry
// with a backoff that grows to 30 s (up to 60 s with jitter), so a watch
// can stay blind for a minute after the API server is back, and a
// revocation in that minute would not reach the gateway. A fresh watch
// lists and watches at once, and its full list replaces what the index
// knows (dropping what was deleted during the outage). The index keeps
// serving throughout.
type watches struct {
	newWatch func() *keyindex.Watch
	current  atomic.Pointer[generation]
}

// generation is one Watch and the context that runs it.
type generation struct {
	watch  *keyindex.Watch
	cancel context.CancelFunc
	done   chan struct{}
}

func newWatches(newWatch func() *keyindex.Watch) *watches {
	w := &watches{newWatch: newWatch}
	w.current.Store(&generation{watch: newWatch(), done: make(chan struct{})})
	return w
}

// start runs a generation under ctx.
func (g *generation) start(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	go func() {
		defer close(g.done)
		g.watch.Run(ctx)
	}()
}

// waitSynced waits until every list of the generation is in the index.
func (g *generation) waitSynced(ctx context.Context) bool {
	for !g.watch.Synced() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// run starts the first generation and reports its first sync.
func (w *watches) run(ctx context.Context) (synced bool) {
	gen := w.current.Load()
	gen.start(ctx)
	return gen.waitSynced(ctx)
}

// restart stops the current watches and starts fresh ones. The old ones
// stop first so that only the fresh ones write to the index from then on.
func (w *watches) restart(ctx context.Context) error {
	gen := &generation{watch: w.newWatch(), done: make(chan struct{})}
	old := w.current.Swap(gen)
	old.cancel()
	<-old.done
	gen.start(ctx)
	if !gen.waitSynced(ctx) {
		return fmt.Errorf("fresh watches did not sync")
	}
	return nil
}

// keysRunner runs the key index's watches, closing synced at their first
// sync, and the API server probe that replaces them after an outage.
type keysRunner struct {
	watches *watches
	synced  chan<- struct{}
	probe   *apiServerProbe
}

func (*keysRunner) Name() string { return "keys" }

func (k *keysRunner) Start(ctx context.Context) error {
	probed := make(chan struct{})
	go func() {
		defer close(probed)
		k.probe.run(ctx)
	}()
	if k.watches.run(ctx) {
		close(k.synced)
	}
	<-ctx.Done()
	<-probed
	return nil
}
