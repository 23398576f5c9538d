package keyindex

import (
	"bytes"
	"encoding/json"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Metrics of the index. Register them with NewMetrics(registry) and give
// them to the index with SetMetrics before it is fed.
type Metrics struct {
	// confirmation is the revocation confirmation time: from the API
	// server storing a revocation or deletion to this replica's index
	// refusing the key (docs/operations.md).
	confirmation *prometheus.HistogramVec
}

// NewMetrics creates the index's metrics and registers them with reg (nil:
// not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		confirmation: promauto.With(reg).NewHistogramVec(prometheus.HistogramOpts{
			Name: "revocation_confirmation_seconds",
			Help: "Time from the API server storing a key's revocation (spec.revoked) or deletion (deletionTimestamp) to this replica's " +
				"key index refusing it, by reason (revoked, deleted). The API server stores those times to the second, so a value reads up to 1 s high.",
			// The stored times are whole seconds: finer buckets than
			// half a second would describe the truncation, not the lag.
			Buckets: []float64{.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300},
		}, []string{"reason"}),
	}
}

// SetMetrics sets the metrics the index reports to; call it before the
// index is fed. Without it the index reports none.
func (ix *Index) SetMetrics(m *Metrics) {
	ix.mu.Lock()
	ix.metrics = m
	ix.mu.Unlock()
}

// observeRefusalLocked records the confirmation time of r, a revocation or
// deletion stored by the API server at written (zero: unknown, not
// recorded) that the index began to refuse at refused: as its own watch
// applied it, or earlier, when a peer relayed it (refusals.go), timed once
// the watch brings the write's time. A change first seen in a full list
// after an outage is timed only if a peer relayed it: a list says nothing
// of when the watch would have.
func (ix *Index) observeRefusalLocked(r Revocation, written, refused time.Time) {
	if ix.metrics == nil || written.IsZero() {
		return
	}
	ix.metrics.confirmation.WithLabelValues(string(r.Reason)).Observe(max(refused.Sub(written), 0).Seconds())
}

// refusalWrittenAt is when the API server stored the change that makes k
// refused, by its own clock: metadata.deletionTimestamp for a deletion,
// else the time of the managedFields entry that owns spec.revoked (the
// write that set it: a revocation cannot be undone, so no later write
// changes that field). Zero when neither says (a client that wrote no
// managedFields entry). Both are stored to the second.
func refusalWrittenAt(k *gatewayv1alpha1.APIKey) time.Time {
	if k.DeletionTimestamp != nil {
		return k.DeletionTimestamp.Time
	}
	if !k.Spec.Revoked {
		return time.Time{}
	}
	var at time.Time
	for _, e := range k.ManagedFields {
		if e.Time == nil || e.FieldsV1 == nil || !bytes.Contains(e.FieldsV1.Raw, []byte(`"f:revoked"`)) {
			continue
		}
		var fields struct {
			Spec map[string]json.RawMessage `json:"f:spec"`
		}
		if json.Unmarshal(e.FieldsV1.Raw, &fields) != nil {
			continue
		}
		if _, ok := fields.Spec["f:revoked"]; ok && e.Time.After(at) {
			at = e.Time.Time
		}
	}
	return at
}
