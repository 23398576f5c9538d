package keyindex

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// fastStart is the first list of an APIKey watch of an empty index (see
// listing.go): it answers at once with no items and the current resource
// version, so the reflector's watch opens from there, and lists the
// APIKeys in the background instead.
type fastStart struct {
	lw    *factsListWatch
	store *apiKeyStore
	// from carries the resource version the watch opened from to the
	// background list.
	from chan string
	used atomic.Bool
	log  *slog.Logger
}

func newFastStart(lw *factsListWatch, s *apiKeyStore, log *slog.Logger) *fastStart {
	f := &fastStart{lw: lw, store: s, from: make(chan string, 1), log: log}
	lw.ListWithContextFunc = f.list
	return f
}

// list is the reflector's list: the fast one the first time, full lists
// after (a relist after an expired watch, which also supersedes the
// background list).
func (f *fastStart) list(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	if f.used.Load() {
		return f.lw.fullList(ctx, opts)
	}
	rv, err := f.lw.currentVersion(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the current resource version of APIKeys: %w", err)
	}
	f.used.Store(true)
	f.store.fastList.Store(true)
	f.from <- rv
	return &factsList{ListMeta: metav1.ListMeta{ResourceVersion: rv}}, nil
}

// listInBackground lists the watch's APIKeys once the hash Secrets are in
// (they, not the APIKeys, make the gateway ready, and the API server
// serves one big list at a time faster than two) and merges them into the
// index. It retries until the list is in, a relist supersedes it, or ctx
// ends.
func (f *fastStart) listInBackground(ctx context.Context, ready func() bool) {
	var rv string
	select {
	case rv = <-f.from:
	case <-ctx.Done():
		return
	}
	if wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		return ready() && f.store.synced.Load(), nil
	}) != nil {
		return
	}
	// The fast list's Replace was the first: generation 1. Anything later
	// is a full relist, which leaves nothing to do.
	const gen = 1
	start := time.Now()
	retry := wait.Backoff{Duration: 250 * time.Millisecond, Factor: 2, Cap: 10 * time.Second, Steps: math.MaxInt32}
	_ = wait.ExponentialBackoffWithContext(ctx, retry, func(ctx context.Context) (bool, error) {
		if f.store.generation.Load() != gen {
			return true, nil
		}
		facts, err := f.listFrom(ctx, rv)
		if err != nil {
			if ctx.Err() != nil {
				return false, ctx.Err() // stopped, not failed
			}
			f.log.Warn("Listing APIKeys in the background failed; retrying", "namespace", f.store.namespace, "err", err)
			return false, nil
		}
		if f.store.merge(facts, gen) {
			f.log.Info("APIKeys listed in the background", "namespace", f.store.namespace, "apikeys", len(facts), "took", time.Since(start).Round(time.Millisecond))
			f.store.markComplete()
		}
		return true, nil
	})
}

// listFrom lists the watch's APIKeys at resource version rv or later: the
// watch covers every change after rv, so a list older than rv could bring
// back what the watch has already changed, and nothing would correct it.
func (f *fastStart) listFrom(ctx context.Context, rv string) ([]*APIKeyFacts, error) {
	list, err := f.lw.fullList(ctx, metav1.ListOptions{ResourceVersion: rv, ResourceVersionMatch: metav1.ResourceVersionMatchNotOlderThan})
	if err != nil {
		return nil, err
	}
	return collectFacts[*APIKeyFacts](list.Items, reduceAPIKey)
}

// fetchAPIKey reads one APIKey for Index.Resolve.
func (c *Clients) fetchAPIKey(ctx context.Context, name types.NamespacedName) (*APIKeyFacts, error) {
	var k gatewayv1alpha1.APIKey
	err := c.apiKeyReads.Get().Namespace(name.Namespace).Resource("apikeys").Name(name.Name).Do(ctx).Into(&k)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading APIKey %s: %w", name, err)
	}
	f := APIKeyFactsOf(&k)
	return &f, nil
}
