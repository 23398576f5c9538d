package controllers

import (
	"time"

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
	phaseTransitions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "codevector", Subsystem: "manager", Name: "status_writes_total",
		Help: "APIKey status writes, by the phase written.",
	}, []string{"phase"})
)

func init() {
	metrics.Registry.MustRegister(keysIssued, keyIDCollisions, hashSeconds, reveals, phaseTransitions)
}

// ObserveHashDuration records one argon2id hash in the argon2_hash_seconds
// histogram: the manager passes it to keys.NewHasher, which times each hash.
func ObserveHashDuration(d time.Duration) { hashSeconds.Observe(d.Seconds()) }
