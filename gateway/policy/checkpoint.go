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
// APIKey, never from the API server, and waits for that copy while a
// replica that just started still lists its APIKeys (awaitListed). The
// rate counters are not restored:
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
		name := types.NamespacedName{Namespace: parts[0], Name: parts[1]}
		f := index.APIKey(name)
		if f == nil {
			f = awaitListed(index, name)
		}
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

// restoreWait bounds how long a budget counter's restore waits for the
// index's APIKey list. Real time: it bounds the API server, not anything a
// key's period depends on.
const restoreWait = 10 * time.Second

// awaitListed looks name up again once the index holds every APIKey, for a
// budget counter touched while a replica that just started still lists
// its APIKeys in the background (keyindex, faststart.go). Its peers may
// forward takes to it by then (static peers keep it in their list while it
// restarts), and a counter restored from nothing would start the budget
// again from zero: the chaos run (issue 28, seed 913) billed a key 2,032
// tokens against a total budget of 1,780 when its counter's owner,
// restarted, took its peers' requests 41 ms before its list was in. It
// waits on the gubernator worker that holds the counter, so the counters
// on that worker wait too, once, for at most the rest of the list.
func awaitListed(index *keyindex.Index, name types.NamespacedName) *keyindex.APIKeyFacts {
	t := time.NewTimer(restoreWait)
	defer t.Stop()
	select {
	case <-index.Listed():
	case <-t.C:
	}
	return index.APIKey(name)
}
