package usage

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

var stored = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestConditionalPatch(t *testing.T) {
	for _, tc := range []struct {
		name         string
		stored, used time.Time
		previous     string
		want         string
	}{
		{"previous key", stored, stored.Add(time.Hour), "cvk_a1B2c3D4",
			`[{"op":"test","path":"/status/previous/prefix","value":"cvk_a1B2c3D4"},{"op":"test","path":"/status/previous/lastUsedAt","value":"2026-05-01T12:00:00Z"},{"op":"add","path":"/status/previous/lastUsedAt","value":"2026-05-01T13:00:00Z"}]`},
		{"none stored", time.Time{}, stored, "",
			`[{"op":"test","path":"/status/lastUsedAt","value":null},{"op":"add","path":"/status/lastUsedAt","value":"2026-05-01T12:00:00Z"}]`},
		{"newer than stored", stored, stored.Add(90 * time.Minute), "",
			`[{"op":"test","path":"/status/lastUsedAt","value":"2026-05-01T12:00:00Z"},{"op":"add","path":"/status/lastUsedAt","value":"2026-05-01T13:30:00Z"}]`},
	} {
		patch, err := conditionalPatch(tc.previous, tc.stored, tc.used)
		if err != nil {
			t.Fatal(err)
		}
		if string(patch) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.name, patch, tc.want)
		}
	}
}

// recorderFor is a Recorder over an index holding one key whose stored
// lastUsedAt is stored, and the status patches it sends.
func recorderFor(t *testing.T, patchErr func(n int) error) (*Recorder, *keyindex.Entry, *[]string) {
	t.Helper()
	scheme := runtime.NewScheme()
	_ = gatewayv1alpha1.AddToScheme(scheme)
	live := &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "laptop", UID: "uid-1"},
		Status:     gatewayv1alpha1.APIKeyStatus{LastUsedAt: &metav1.Time{Time: stored.Add(3 * time.Hour)}},
	}
	var patches []string
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(live).WithInterceptorFuncs(interceptor.Funcs{
		SubResourcePatch: func(_ context.Context, _ client.Client, sub string, obj client.Object, patch client.Patch, _ ...client.SubResourcePatchOption) error {
			if sub != "status" || patch.Type() != types.JSONPatchType {
				t.Errorf("patch of %q as %s, want status as a JSON patch", sub, patch.Type())
			}
			data, err := patch.Data(obj)
			if err != nil {
				t.Fatal(err)
			}
			patches = append(patches, string(data))
			if patchErr != nil {
				return patchErr(len(patches))
			}
			return nil
		},
	}).Build()
	ix := keyindex.New(func(string) {})
	ix.SetAPIKey(keyindex.APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1",
		KeyID: "ABCDEFGH", Phase: gatewayv1alpha1.PhaseActive, LastUsedAt: stored})
	e := ix.Lookup("ABCDEFGH")
	if e == nil {
		t.Fatal("key not in the index")
	}
	return New(ix, c, time.Minute, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry()), e, &patches
}

func TestFlushWritesOnlyNewerTimes(t *testing.T) {
	ctx := context.Background()
	t.Run("newer", func(t *testing.T) {
		r, e, patches := recorderFor(t, nil)
		r.Record(e, stored.Add(90*time.Minute))
		r.Flush(ctx)
		want := `[{"op":"test","path":"/status/lastUsedAt","value":"2026-05-01T12:00:00Z"},{"op":"add","path":"/status/lastUsedAt","value":"2026-05-01T13:30:00Z"}]`
		if len(*patches) != 1 || (*patches)[0] != want {
			t.Errorf("patches %q, want one: %s", *patches, want)
		}
		r.Flush(ctx)
		if len(*patches) != 1 {
			t.Errorf("%d patches after a second flush with no new use, want 1", len(*patches))
		}
	})
	t.Run("older", func(t *testing.T) {
		r, e, patches := recorderFor(t, nil)
		r.Record(e, stored.Add(-time.Hour))
		r.Flush(ctx)
		if len(*patches) != 0 {
			t.Errorf("an older use was written: %q", *patches)
		}
	})
	t.Run("within one interval of the stored time", func(t *testing.T) {
		r, e, patches := recorderFor(t, nil)
		r.Record(e, stored.Add(30*time.Second))
		r.Flush(ctx)
		if len(*patches) != 0 {
			t.Errorf("a use within the interval was written: %q", *patches)
		}
	})
	t.Run("another replica wrote a newer time first", func(t *testing.T) {
		// The test op fails (422); the live APIKey says 15:00, later than
		// this replica's 13:30: nothing more is written.
		r, e, patches := recorderFor(t, func(int) error {
			return apierrors.NewInvalid(schema.GroupKind{Group: gatewayv1alpha1.GroupVersion.Group, Kind: "APIKey"}, "laptop", nil)
		})
		r.Record(e, stored.Add(90*time.Minute))
		r.Flush(ctx)
		if len(*patches) != 1 {
			t.Errorf("%d patches, want the one that failed its test and no retry: %q", len(*patches), *patches)
		}
	})
}
