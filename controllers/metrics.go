package controllers

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/prometheus/client_golang/prometheus"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Metrics are the manager's series. The manager registers them on
// controller-runtime's registry (NewMetrics(metrics.Registry)), so its
// /metrics endpoint serves them next to the workqueue and client metrics;
// every name gets the prefix codevector_manager_ in one place, here.
type Metrics struct {
	keysIssued       prometheus.Counter
	keyIDCollisions  prometheus.Counter
	hashSeconds      prometheus.Histogram
	reveals          *prometheus.CounterVec
	keysRotated      prometheus.Counter
	phaseTransitions *prometheus.CounterVec
	expiringSoon     *expiringKeysCollector
}

// NewMetrics creates the manager's series on reg. Dev mode and tests run
// several managers in one process, one after another, on the one
// controller-runtime registry: a series already there is reused, not an
// error.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	reg = prometheus.WrapRegistererWithPrefix(gatewayv1alpha1.MetricsNamespace+"_manager_", reg)
	var err error
	m := &Metrics{
		keysIssued: register(reg, &err, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keys_issued_total", Help: "Keys generated, hashed and made Active.",
		})),
		keyIDCollisions: register(reg, &err, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "key_id_collisions_total", Help: "Generated keys discarded because their key ID was already in use.",
		})),
		hashSeconds: register(reg, &err, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "argon2_hash_seconds", Help: "Time to hash one key with argon2id.",
			Buckets: []float64{.005, .01, .02, .04, .08, .16, .32, .64, 1.28},
		})),
		reveals: register(reg, &err, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "reveals_total", Help: "Reveal Secrets by outcome: consumed by a reader, or expired unread.",
		}, []string{"outcome"})),
		keysRotated: register(reg, &err, prometheus.NewCounter(prometheus.CounterOpts{
			Name: "keys_rotated_total", Help: "Rotations carried out: a new key issued for an existing APIKey.",
		})),
		phaseTransitions: register(reg, &err, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "status_writes_total", Help: "APIKey status writes, by the phase written.",
		}, []string{"phase"})),
		expiringSoon: register(reg, &err, &expiringKeysCollector{
			desc: prometheus.NewDesc("keys_expiring_soon",
				"Active keys that expire within 7 days, by namespace.", []string{"namespace"}, nil),
		}),
	}
	return m, err
}

// register registers c on reg, or returns the collector already registered
// under its name; the first other error is kept in *err.
func register[C prometheus.Collector](reg prometheus.Registerer, err *error, c C) C {
	e := reg.Register(c)
	if are, ok := e.(prometheus.AlreadyRegisteredError); ok {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if e != nil && *err == nil {
		*err = fmt.Errorf("registering a manager metric: %w", e)
	}
	return c
}

// ObserveHashDuration records one argon2id hash in the argon2_hash_seconds
// histogram: the manager passes it to keys.NewHasher, which times each hash.
func (m *Metrics) ObserveHashDuration(d time.Duration) { m.hashSeconds.Observe(d.Seconds()) }

// expiringWithin is the horizon of the keys_expiring_soon gauge: the first
// expiry warning.
const expiringWithin = 7 * 24 * time.Hour

// expiringKeysCollector counts, per namespace, the Active keys that expire within 7
// days, so that teams can alert on keys about to stop working. It is
// computed from the manager's cache on every scrape (a custom collector):
// a gauge kept up to date by reconciles would miss keys that cross the
// 7-day line while nothing happens to them.
type expiringKeysCollector struct {
	desc *prometheus.Desc
	// from is the reconciler of the running manager, whose cache and
	// clock the gauge reads; nil while no manager runs. (Tests run several
	// managers in one process, one after another.)
	from atomic.Pointer[APIKeyReconciler]
}

func (c *expiringKeysCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiringKeysCollector) Collect(ch chan<- prometheus.Metric) {
	r := c.from.Load()
	if r == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var list gatewayv1alpha1.APIKeyList
	// Read-only: no need to copy every cached APIKey on every scrape.
	if err := r.Client.List(ctx, &list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	now := r.Clock.Now()
	counts := map[string]int{}
	for i := range list.Items {
		k := &list.Items[i]
		exp := k.ResolvedExpiry()
		if exp != nil && k.EffectiveStatus(now) == gatewayv1alpha1.PhaseActive && exp.Sub(now) <= expiringWithin {
			counts[k.Namespace]++
		}
	}
	for ns, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), ns)
	}
}

// source returns a manager runnable that points the gauge at r while the
// manager runs.
func (c *expiringKeysCollector) source(r *APIKeyReconciler) manager.Runnable {
	return manager.RunnableFunc(func(ctx context.Context) error {
		c.from.Store(r)
		<-ctx.Done()
		c.from.CompareAndSwap(r, nil)
		return nil
	})
}
