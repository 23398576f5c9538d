package policy

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/quota"
)

// Checkpoint restores a budget counter from status.usage when the engine
// has no count for it: after every replica restarted, or when a period
// outlives the engine's memory. It answers from the watch's copy of the
// APIKey, never from the API server. The rate counters are not restored:
// a minute is over before a restarted replica is ready.
//
// What it restores is what the gateways last wrote, so spend in the last
// flush interval (--last-used-interval) before every replica stopped at
// once is not counted again.
func Checkpoint(index *keyindex.Index) quota.Checkpoint {
	return func(key string) (int64, time.Time, bool) {
		// counterKey: namespace/name/uid/what.
		parts := strings.Split(key, "/")
		if len(parts) != 4 || parts[3] != "budget" {
			return 0, time.Time{}, false
		}
		f := index.APIKey(types.NamespacedName{Namespace: parts[0], Name: parts[1]})
		if f == nil || f.UID != types.UID(parts[2]) || f.Policy == nil || f.Policy.Budget == nil || f.Policy.Usage == nil {
			return 0, time.Time{}, false
		}
		u := f.Policy.Usage
		if f.Policy.Budget.Tokens != nil {
			return u.InputTokens + u.OutputTokens, u.PeriodStart.Time, true
		}
		usd, err := gatewayv1alpha1.ParseUSD(u.USD)
		if err != nil && u.USD != "" {
			return 0, time.Time{}, false
		}
		return int64(usd), u.PeriodStart.Time, true
	}
}
