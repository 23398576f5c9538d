package keyindex

import (
	"testing"
	"time"

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
