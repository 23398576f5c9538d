package server

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

// watches runs the gateway's watch cache and can replace it with a fresh
// one. Why replace: after an API server outage, client-go's reflectors
// retry with a backoff that grows to 30 s (up to 60 s with jitter), so an
// informer can stay blind for a minute after the API server is back, and a
// revocation in that minute would not reach the gateway. A fresh cache
// lists and watches at once. The index keeps serving throughout: it only
// ever receives newer state.
type watches struct {
	cfg     *rest.Config
	opts    cache.Options
	index   *keyindex.Index
	onEvent func()
	current atomic.Pointer[generation]
}

// generation is one cache and the context that runs it.
type generation struct {
	cache  cache.Cache
	synced func() bool // the index has everything of the initial lists
	cancel context.CancelFunc
	done   chan error
}

func newWatches(cfg *rest.Config, opts cache.Options, index *keyindex.Index, onEvent func()) (*watches, error) {
	// Every generation shares one HTTP client and one REST mapper, so a
	// fresh cache needs no discovery round trips before it can list.
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("creating HTTP client: %w", err)
	}
	if opts.Mapper, err = apiutil.NewDynamicRESTMapper(cfg, httpClient); err != nil {
		return nil, fmt.Errorf("creating REST mapper: %w", err)
	}
	opts.HTTPClient = httpClient
	w := &watches{cfg: cfg, opts: opts, index: index, onEvent: onEvent}
	gen, err := w.newGeneration()
	if err != nil {
		return nil, err
	}
	w.current.Store(gen)
	return w, nil
}

func (w *watches) newGeneration() (*generation, error) {
	c, err := cache.New(w.cfg, w.opts)
	if err != nil {
		return nil, fmt.Errorf("creating watch cache: %w", err)
	}
	synced, err := keyindex.Watch(context.Background(), c, w.index, w.onEvent)
	if err != nil {
		return nil, err
	}
	return &generation{cache: c, synced: synced, done: make(chan error, 1)}, nil
}

// waitIndexed waits until the cache has synced and the index has taken in
// all of it.
func (g *generation) waitIndexed(ctx context.Context) bool {
	if !g.cache.WaitForCacheSync(ctx) {
		return false
	}
	for !g.synced() {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true
}

// start runs a generation under ctx.
func (g *generation) start(ctx context.Context) {
	ctx, g.cancel = context.WithCancel(ctx)
	go func() { g.done <- g.cache.Start(ctx) }()
}

// run starts the first generation and reports its first sync.
func (w *watches) run(ctx context.Context) (synced bool) {
	gen := w.current.Load()
	gen.start(ctx)
	return gen.waitIndexed(ctx)
}

// restart stops the current cache and starts a fresh one, then drops from
// the index what the fresh one no longer lists (deleted during the outage).
// The old cache stops first so that only the fresh one writes to the index
// from then on.
func (w *watches) restart(ctx context.Context) error {
	gen, err := w.newGeneration()
	if err != nil {
		return err
	}
	old := w.current.Swap(gen)
	old.cancel()
	<-old.done
	gen.start(ctx)
	if !gen.waitIndexed(ctx) {
		return fmt.Errorf("fresh watch cache did not sync")
	}
	return w.retainListed(ctx, gen.cache)
}

func (w *watches) retainListed(ctx context.Context, c cache.Cache) error {
	var apiKeys gatewayv1alpha1.APIKeyList
	if err := c.List(ctx, &apiKeys); err != nil {
		return fmt.Errorf("listing cached APIKeys: %w", err)
	}
	var secrets corev1.SecretList
	if err := c.List(ctx, &secrets); err != nil {
		return fmt.Errorf("listing cached hash Secrets: %w", err)
	}
	names := make(map[types.NamespacedName]bool, len(apiKeys.Items))
	for _, k := range apiKeys.Items {
		names[types.NamespacedName{Namespace: k.Namespace, Name: k.Name}] = true
	}
	uids := make(map[types.UID]bool, len(secrets.Items))
	for _, s := range secrets.Items {
		uids[s.UID] = true
	}
	w.index.Retain(names, uids)
	return nil
}

// reader reads from whichever cache is current.
type reader struct{ w *watches }

var _ client.Reader = reader{}

func (r reader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	return r.w.current.Load().cache.Get(ctx, key, obj, opts...)
}

func (r reader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.w.current.Load().cache.List(ctx, list, opts...)
}
