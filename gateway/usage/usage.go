// Package usage records when each key was last used and writes it to the
// APIKey's status.lastUsedAt in the background: in memory on every request,
// to the API server at most once per key per interval, never moving the
// stored time backwards whatever the number of gateway replicas.
package usage

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

// Recorder collects last-use times. Record is on the request path and takes
// a read lock and one atomic store; everything else happens in Run.
type Recorder struct {
	index    *keyindex.Index
	client   client.Client
	interval time.Duration
	clock    clock.WithTicker
	log      *slog.Logger
	writes   *prometheus.CounterVec

	mu   sync.RWMutex
	seen map[string]*slot // key ID -> last use

	// handOff, once set, takes the last-use times of the final flush to a
	// peer instead of the API server (handoff.go); closing refuses the
	// peers' hand-offs once that flush has begun (adopting holds
	// closingMu's read lock, so no hand-off lands after it).
	handOff   atomic.Pointer[handOff]
	closingMu sync.RWMutex
	closing   bool
	handOffs  *prometheus.CounterVec
}

type slot struct {
	name    types.NamespacedName
	last    atomic.Int64 // unix seconds of the latest use
	flushed int64        // what this replica last wrote or saw stored (Run only)
}

// New returns a Recorder that patches through c (which must be allowed to
// patch apikeys/status) every interval, as measured by clk (nil means
// clock.RealClock{}).
func New(index *keyindex.Index, c client.Client, interval time.Duration, clk clock.WithTicker, log *slog.Logger, reg prometheus.Registerer) *Recorder {
	if clk == nil {
		clk = clock.RealClock{}
	}
	f := promauto.With(reg)
	r := &Recorder{
		index: index, client: c, interval: interval, clock: clk, log: log, seen: map[string]*slot{},
		writes:   f.NewCounterVec(prometheus.CounterOpts{Name: "last_used_writes_total", Help: "lastUsedAt status writes by outcome: written, skipped (already recent enough), conflict (another replica wrote first), error."}, []string{"outcome"}),
		handOffs: f.NewCounterVec(prometheus.CounterOpts{Name: "last_used_handoffs_total", Help: "Last-use times handed between replicas when one stops, instead of written by it: sent to a peer, or received from one (and written with this replica's next flush)."}, []string{"direction"}),
	}
	return r
}

// Record notes that e was used at now.
func (r *Recorder) Record(e *keyindex.Entry, now time.Time) {
	sec := now.Unix()
	r.mu.RLock()
	s := r.seen[e.KeyID]
	r.mu.RUnlock()
	if s == nil {
		r.mu.Lock()
		if s = r.seen[e.KeyID]; s == nil {
			s = &slot{name: e.Name}
			r.seen[e.KeyID] = s
		}
		r.mu.Unlock()
	}
	// Store only when the second changes, so a hot key does not bounce a
	// cache line between cores on every request.
	if s.last.Load() < sec {
		s.last.Store(sec)
	}
}

// Run flushes every interval until ctx ends, then once more: to a peer if
// one takes the times (handoff.go), else to the API server.
func (r *Recorder) Run(ctx context.Context) {
	flushEvery(ctx, r.clock, r.interval, r.Flush, r.finalFlush)
}

// flushEvery calls flush every interval until ctx ends, then final
// with a few seconds of its own, so what a stopping gateway counted last
// is not lost.
func flushEvery(ctx context.Context, clk clock.WithTicker, interval time.Duration, flush, final func(context.Context)) {
	t := clk.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			final(flushCtx)
			cancel()
			return
		case <-t.C():
			flush(ctx)
		}
	}
}

// Flush writes the last-use time of every key used since the last flush,
// unless the stored time is already within one interval of it (another
// replica recorded a use recently): lastUsedAt is accurate to the interval,
// and N replicas then cost about one write per key per interval, not N.
func (r *Recorder) Flush(ctx context.Context) {
	for _, p := range r.unflushed() {
		last := p.s.last.Load()
		e := r.index.Lookup(p.id)
		if e == nil || e.Name != p.s.name {
			r.forget(p.id)
			continue
		}
		storedAt, previousPrefix := e.LastUsedAt, ""
		if e.Previous {
			// The key a rotation replaced: its own lastUsedAt, so the owner
			// sees when its users stopped using it.
			storedAt, previousPrefix = e.PreviousLastUsedAt, e.Prefix
		}
		stored := unixOrZero(storedAt)
		if stored > last-int64(r.interval/time.Second) && stored > 0 {
			p.s.flushed = last
			r.writes.WithLabelValues("skipped").Inc()
			continue
		}
		outcome, err := r.write(ctx, p.s.name, previousPrefix, storedAt, time.Unix(last, 0))
		r.writes.WithLabelValues(outcome).Inc()
		if err != nil {
			r.log.Warn("Failed to record last use of API key", "apikey", p.s.name.String(), "prefix", e.Prefix, "error", err)
			continue
		}
		p.s.flushed = last
	}
}

// pendingUse is a key used since this replica last flushed it.
type pendingUse struct {
	id string
	s  *slot
}

func (r *Recorder) unflushed() []pendingUse {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var todo []pendingUse
	for id, s := range r.seen {
		if s.last.Load() > s.flushed {
			todo = append(todo, pendingUse{id, s})
		}
	}
	return todo
}

// write sets lastUsedAt to t if the stored value is still `stored` (a JSON
// patch `test` makes the write conditional). When another replica wrote in
// between, it re-reads and writes only if t is still newer: the stored time
// never moves backwards. With previousPrefix set it writes
// status.previous.lastUsedAt instead, and only while status.previous is
// still that key.
func (r *Recorder) write(ctx context.Context, name types.NamespacedName, previousPrefix string, stored, t time.Time) (string, error) {
	outcome, err := conditionalStatusPatch(ctx, r.client, name, "lastUsedAt", 3,
		func() ([]byte, error) { return conditionalPatch(previousPrefix, stored, t) },
		func(live *gatewayv1alpha1.APIKey) string {
			liveLastUsed := live.Status.LastUsedAt
			if previousPrefix != "" {
				p := live.Status.Previous
				if p == nil || p.Prefix != previousPrefix {
					return "skipped" // its grace period ended meanwhile
				}
				liveLastUsed = p.LastUsedAt
			}
			stored = time.Time{}
			if liveLastUsed != nil {
				stored = liveLastUsed.Time
			}
			if !stored.Before(t) {
				return "conflict"
			}
			return ""
		})
	switch {
	case outcome == "retried":
		// last_used_writes_total counts it as written: its "conflict"
		// means this replica wrote nothing.
		return "written", nil
	case errors.Is(err, errKeptChanging):
		return "conflict", nil // other replicas kept writing first
	}
	return outcome, err
}

// conditionalPatch is a JSON patch that sets lastUsedAt to t only if it is
// still stored (null when absent, which the API server's test treats as
// "missing"): status.lastUsedAt, or with previousPrefix set
// status.previous.lastUsedAt, tested to still be that key's.
func conditionalPatch(previousPrefix string, stored, t time.Time) ([]byte, error) {
	var expect any
	if !stored.IsZero() {
		expect = metav1.NewTime(stored)
	}
	path := "/status/lastUsedAt"
	var ops []map[string]any
	if previousPrefix != "" {
		path = "/status/previous/lastUsedAt"
		ops = append(ops, map[string]any{"op": "test", "path": "/status/previous/prefix", "value": previousPrefix})
	}
	ops = append(ops,
		map[string]any{"op": "test", "path": path, "value": expect},
		map[string]any{"op": "add", "path": path, "value": metav1.NewTime(t)})
	return json.Marshal(ops)
}

func (r *Recorder) forget(id string) {
	r.mu.Lock()
	delete(r.seen, id)
	r.mu.Unlock()
}

func unixOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}
