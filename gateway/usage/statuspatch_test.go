package usage

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// TestConditionalStatusPatch drives the write both recorders share through
// the API server's answers: a failed test (422) means another replica wrote
// first and the key is read again; a key that is gone is skipped.
func TestConditionalStatusPatch(t *testing.T) {
	failedTest := apierrors.NewInvalid(schema.GroupKind{Group: gatewayv1alpha1.GroupVersion.Group, Kind: "APIKey"}, "laptop", nil)
	gone := apierrors.NewNotFound(schema.GroupResource{Group: gatewayv1alpha1.GroupVersion.Group, Resource: "apikeys"}, "laptop")
	refused := apierrors.NewForbidden(schema.GroupResource{Group: gatewayv1alpha1.GroupVersion.Group, Resource: "apikeys"}, "laptop", nil)
	for _, tc := range []struct {
		name          string
		patchErrs     []error // the answer to each patch in turn; nil after the list
		deletedMidway bool    // the APIKey is deleted when its first patch fails
		stop          string  // what reread returns
		wantOutcome   string
		wantErr       func(error) bool // nil: no error
		wantPatches   int
		wantRereads   int
	}{
		{name: "written", wantOutcome: "written", wantPatches: 1},
		{name: "another replica wrote first", patchErrs: []error{failedTest}, wantOutcome: "retried", wantPatches: 2, wantRereads: 1},
		{name: "gone at the patch", patchErrs: []error{gone}, wantOutcome: "skipped", wantPatches: 1},
		{name: "gone at the read", patchErrs: []error{failedTest}, deletedMidway: true, wantOutcome: "skipped", wantPatches: 1},
		{name: "nothing left to write", patchErrs: []error{failedTest}, stop: "conflict", wantOutcome: "conflict", wantPatches: 1, wantRereads: 1},
		{name: "kept changing", patchErrs: []error{failedTest, failedTest, failedTest}, wantOutcome: "error",
			wantErr: func(err error) bool { return errors.Is(err, errKeptChanging) }, wantPatches: 3, wantRereads: 3},
		{name: "refused", patchErrs: []error{refused}, wantOutcome: "error", wantErr: apierrors.IsForbidden, wantPatches: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			var r *Recorder
			r, e, patches := recorderFor(t, func(n int) error {
				if n == 1 && tc.deletedMidway {
					live := &gatewayv1alpha1.APIKey{}
					live.Namespace, live.Name = "team", "laptop"
					if err := r.client.Delete(ctx, live); err != nil {
						t.Fatal(err)
					}
				}
				if n <= len(tc.patchErrs) {
					return tc.patchErrs[n-1]
				}
				return nil
			})
			rereads := 0
			outcome, err := conditionalStatusPatch(ctx, r.client, e.Name, "lastUsedAt", 3,
				func() ([]byte, error) { return []byte(`[]`), nil },
				func(live *gatewayv1alpha1.APIKey) string {
					rereads++
					if live.UID != "uid-1" {
						t.Errorf("reread got %s/%s uid %q, want the live APIKey", live.Namespace, live.Name, live.UID)
					}
					return tc.stop
				})
			if outcome != tc.wantOutcome {
				t.Errorf("outcome %q, want %q", outcome, tc.wantOutcome)
			}
			if (tc.wantErr == nil) != (err == nil) || err != nil && !tc.wantErr(err) {
				t.Errorf("unexpected error %v", err)
			}
			if len(*patches) != tc.wantPatches || rereads != tc.wantRereads {
				t.Errorf("%d patches and %d rereads, want %d and %d", len(*patches), rereads, tc.wantPatches, tc.wantRereads)
			}
		})
	}
}
