package keyindex

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// The write that refused a key is read from the API server's own records:
// the deletion timestamp, else the managedFields entry owning spec.revoked
// (not a later write of another field by another manager).
func TestRefusalWrittenAt(t *testing.T) {
	at := func(s int) *metav1.Time { t := metav1.NewTime(time.Date(2027, 1, 1, 0, 0, s, 0, time.UTC)); return &t }
	entry := func(s int, fields string) metav1.ManagedFieldsEntry {
		return metav1.ManagedFieldsEntry{Manager: "m", Operation: metav1.ManagedFieldsOperationUpdate, Time: at(s), FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(fields)}}
	}
	for _, tc := range []struct {
		name string
		key  gatewayv1alpha1.APIKey
		want *metav1.Time
	}{
		{"active", gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{entry(1, `{"f:spec":{"f:revoked":{}}}`)}}}, nil},
		{"revoked", gatewayv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{ManagedFields: []metav1.ManagedFieldsEntry{
				entry(3, `{"f:spec":{"f:displayName":{}}}`),
				entry(2, `{"f:spec":{"f:revoked":{}}}`),
				entry(9, `{"f:status":{"f:revoked":{}}}`),
			}},
			Spec: gatewayv1alpha1.APIKeySpec{Revoked: true}}, at(2)},
		{"revoked, nothing recorded", gatewayv1alpha1.APIKey{Spec: gatewayv1alpha1.APIKeySpec{Revoked: true}}, nil},
		{"deleting", gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: at(5), ManagedFields: []metav1.ManagedFieldsEntry{entry(2, `{"f:spec":{"f:revoked":{}}}`)}},
			Spec: gatewayv1alpha1.APIKeySpec{Revoked: true}}, at(5)},
	} {
		got := refusalWrittenAt(&tc.key)
		if want := (time.Time{}); tc.want != nil {
			want = tc.want.Time
			if !got.Equal(want) {
				t.Errorf("%s: %v, want %v", tc.name, got, want)
			}
		} else if !got.IsZero() {
			t.Errorf("%s: %v, want none", tc.name, got)
		}
	}
}

// The confirmation time ends when this replica starts refusing the key:
// as its watch applies the change, or earlier, when a peer relayed it;
// timed once, when the watch brings the time the change was stored.
func TestConfirmationTimeEndsAtTheFirstRefusal(t *testing.T) {
	reg := prometheus.NewRegistry()
	ix := New(nil)
	ix.SetMetrics(NewMetrics(reg))

	// Seen by the watch: stored 2 s ago, refused now.
	watched := factsAt("uid-watched", 10)
	watched.Name.Name = "watched"
	ix.setWatchedAPIKey(watched, nil)
	revoked := *watched
	revoked.ResourceVersion, revoked.Revoked, revoked.RefusalWrittenAt = 11, true, time.Now().Add(-2*time.Second)
	ix.setWatchedAPIKey(&revoked, nil)

	// Relayed by a peer first: stored 3 s before the relay arrived; the
	// watch delivers it 5 s later (as if stalled), which must not count.
	relayed := factsAt("uid-relayed", 10)
	relayed.Name.Name = "relayed"
	ix.setWatchedAPIKey(relayed, nil)
	relayedAt := time.Now()
	if !ix.Refuse(Revocation{Name: relayed.Name, UID: "uid-relayed", ResourceVersion: 20, Reason: RevocationDeleted}) {
		t.Fatal("the relay applied nothing")
	}
	deleting := *relayed
	deleting.ResourceVersion, deleting.Deleting, deleting.RefusalWrittenAt = 20, true, relayedAt.Add(-3*time.Second)
	ix.setWatchedAPIKey(&deleting, nil)
	ix.setWatchedAPIKey(&deleting, nil) // again: timed once

	got := map[string][2]float64{}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = [2]float64{float64(m.GetHistogram().GetSampleCount()), m.GetHistogram().GetSampleSum()}
		}
	}
	// A loaded machine adds to the measured time: a bound of seconds.
	if c := got["revoked"]; c[0] != 1 || c[1] < 2 || c[1] > 4 {
		t.Errorf("revoked by the watch: count %v, sum %v s; want 1 of about 2 s", c[0], c[1])
	}
	if c := got["deleted"]; c[0] != 1 || c[1] < 3 || c[1] > 5 {
		t.Errorf("deleted, relayed first: count %v, sum %v s; want 1 of about 3 s", c[0], c[1])
	}
}
