package usage

import (
	"context"
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// errKeptChanging: every attempt of a conditionalStatusPatch found that
// another replica had written first.
var errKeptChanging = errors.New("kept changing")

// conditionalStatusPatch writes field of the status of the APIKey name with
// the JSON patch that patch builds, one that tests the stored value before
// it writes, so that no replica overwrites what another wrote in between:
// both the last-use times and the spend of a key are written by every
// replica. When the test fails, it reads the APIKey again and hands it to
// reread, which takes in what is stored now (for patch to build on) and
// returns "" to try again, or the outcome to stop with. At most attempts
// patches are sent.
//
// The outcome is "written", or "retried" when written after a failed test;
// "skipped" when the APIKey is gone; what reread stopped with; or "error"
// with the reason, errKeptChanging when every attempt failed its test.
func conditionalStatusPatch(ctx context.Context, c client.Client, name types.NamespacedName, field string, attempts int,
	patch func() ([]byte, error), reread func(live *gatewayv1alpha1.APIKey) (stop string)) (string, error) {
	outcome := "written"
	for attempt := 0; attempt < attempts; attempt++ {
		data, err := patch()
		if err != nil {
			return "error", err
		}
		k := &gatewayv1alpha1.APIKey{}
		k.Namespace, k.Name = name.Namespace, name.Name
		err = c.Status().Patch(ctx, k, client.RawPatch(types.JSONPatchType, data))
		switch {
		case err == nil:
			return outcome, nil
		case apierrors.IsNotFound(err):
			return "skipped", nil
		case !writtenFirstByOther(err):
			return "error", fmt.Errorf("patching %s: %w", field, err)
		}
		outcome = "retried"
		live := &gatewayv1alpha1.APIKey{}
		if err := c.Get(ctx, name, live); err != nil {
			if apierrors.IsNotFound(err) {
				return "skipped", nil
			}
			return "error", fmt.Errorf("reading %s again after another replica wrote it: %w", field, err)
		}
		if stop := reread(live); stop != "" {
			return stop, nil
		}
	}
	return "error", fmt.Errorf("%s of %s %w under %d attempts", field, name, errKeptChanging, attempts)
}

// writtenFirstByOther: a failed `test` comes back as 422 Invalid.
func writtenFirstByOther(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsConflict(err)
}
