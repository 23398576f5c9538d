package keyindex

import (
	"fmt"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// TestUsableAgreesWithStatus: the index refuses exactly the keys the
// console and the CLI do not show as Active (gatewayv1alpha1.StatusOf),
// and accepts an Active one once its hash is there; its reasons name the
// same status.
func TestUsableAgreesWithStatus(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	phases := []gatewayv1alpha1.Phase{"", gatewayv1alpha1.PhasePending, gatewayv1alpha1.PhaseActive,
		gatewayv1alpha1.PhaseRevoked, gatewayv1alpha1.PhaseExpired, gatewayv1alpha1.PhaseFailed}
	expiries := []time.Time{{}, now.Add(-time.Hour), now, now.Add(time.Hour)}
	for _, revoked := range []bool{false, true} {
		for _, deleting := range []bool{false, true} {
			for _, phase := range phases {
				for _, exp := range expiries {
					for _, hashed := range []bool{false, true} {
						facts := &APIKeyFacts{UID: "uid-1", KeyID: "k1", Revoked: revoked, Deleting: deleting, Phase: phase, ExpiresAt: exp}
						e := &Entry{APIKeyFacts: facts}
						if hashed {
							e.Hash = &keys.PHC{}
						}
						name := fmt.Sprintf("revoked=%v deleting=%v phase=%q expires=%v hash=%v", revoked, deleting, phase, exp.Sub(now), hashed)
						status := gatewayv1alpha1.StatusOf(revoked, deleting, phase, exp, now)
						reason := e.Usable(now)
						if (reason == "") != (status == gatewayv1alpha1.PhaseActive && hashed) {
							t.Errorf("%s: Usable %q but status %s", name, reason, status)
						}
						switch status {
						case gatewayv1alpha1.PhaseRevoked:
							if reason != ReasonRevoked {
								t.Errorf("%s: reason %q for a Revoked key", name, reason)
							}
						case gatewayv1alpha1.PhaseExpired:
							if reason != ReasonExpired {
								t.Errorf("%s: reason %q for an Expired key", name, reason)
							}
						}
					}
				}
			}
		}
	}
}
