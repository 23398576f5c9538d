package controllers

import (
	"context"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Metrics live on controller-runtime's registry, so the manager's /metrics
// endpoint serves them next to the workqueue and client metrics.
var (
	keysIssued = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "keys_issued_total",
		Help: "Keys generated, hashed and made Active.",
	})
	keyIDCollisions = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "key_id_collisions_total",
		Help: "Generated keys discarded because their key ID was already in use.",
	})
	hashSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "argon2_hash_seconds",
		Help:    "Time to hash one key with argon2id.",
		Buckets: []float64{.005, .01, .02, .04, .08, .16, .32, .64, 1.28},
	})
	reveals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "reveals_total",
		Help: "Reveal Secrets by outcome: consumed by a reader, or expired unread.",
	}, []string{"outcome"})
	keysRotated = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "keys_rotated_total",
		Help: "Rotations carried out: a new key issued for an existing APIKey.",
	})
	phaseTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "status_writes_total",
		Help: "APIKey status writes, by the phase written.",
	}, []string{"phase"})
)

func init() {
	metrics.Registry.MustRegister(keysIssued, keyIDCollisions, hashSeconds, reveals, phaseTransitions, keysRotated, expiringSoon)
}

// ObserveHashDuration records one argon2id hash in the argon2_hash_seconds
// histogram: the manager passes it to keys.NewHasher, which times each hash.
func ObserveHashDuration(d time.Duration) { hashSeconds.Observe(d.Seconds()) }

// expiringWithin is the horizon of the keys_expiring_soon gauge: the first
// expiry warning.
const expiringWithin = 7 * 24 * time.Hour

// expiringSoon counts, per namespace, the Active keys that expire within 7
// days, so that teams can alert on keys about to stop working. It is
// computed from the manager's cache on every scrape (a custom collector):
// a gauge kept up to date by reconciles would miss keys that cross the
// 7-day line while nothing happens to them.
var expiringSoon = &expiringKeysCollector{
	desc: prometheus.NewDesc("codevector_manager_keys_expiring_soon",
		"Active keys that expire within 7 days, by namespace.", []string{"namespace"}, nil),
}

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
