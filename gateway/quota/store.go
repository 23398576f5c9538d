package quota

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

// Checkpoint reports how much of a counter's current period was already
// spent before this process (or the replica that owned the counter) started
// counting it, for example from status.usage of the APIKey. ok is false when
// there is nothing to restore. For the Total period periodStart is ignored;
// otherwise the amount is used only if periodStart is the start of the
// counter's current period, so a checkpoint from last month never counts
// against this month.
//
// It runs on gubernator's worker goroutine for the counter, on the replica
// that owns it, once per cache miss: it must answer from memory (an informer
// cache), never from the API server.
type Checkpoint func(key string) (spent int64, periodStart time.Time, ok bool)

// settleMetadata carries a settlement amount to the owner of a counter. See
// hookStore.OnChange.
const settleMetadata = "codevector-settle"

// floorMetadata carries the least a counter has spent, as a peer last
// heard it from the counter's owner, to the owner (shadowCounts.floors).
const floorMetadata = "codevector-floor"

// hookStore is the gubernator Store of an Engine. It persists nothing; it
// uses the two hooks gubernator offers around its in-memory state:
//
//   - Get is called on a cache miss: it restores a counter from Checkpoint.
//   - OnChange is called on the owning replica, on the worker goroutine that
//     holds the counter, after each request was applied. It applies
//     settlements and floors (a count handed back after the peer list
//     changed, see shadowCounts.floors) and corrects the sticky over-limit
//     status (below).
//
// gubernator's token bucket cannot count hits beyond the limit: a request
// for more than remains is refused and changes nothing (or, with
// DRAIN_OVER_LIMIT, sets the remainder to zero and forgets the excess). A
// settlement must count the real usage even when it overdraws, so Settle
// sends hits=0 (a pure read, never refused) with the amount in metadata, and
// OnChange subtracts it from the item. Metadata travels with the request to
// the owner, and the item is only ever touched by that one worker goroutine,
// so this is as atomic as a normal hit.
type hookStore struct {
	checkpoint Checkpoint
	shadows    *shadowCounts // nil for a single replica
	log        *slog.Logger
}

var _ guber.Store = (*hookStore)(nil)

func (s *hookStore) OnChange(_ context.Context, r *guber.RateLimitReq, item *guber.CacheItem) {
	t, ok := item.Value.(*guber.TokenBucketItem)
	if !ok {
		return
	}
	if v, ok := r.Metadata[settleMetadata]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			t.Remaining -= n
		}
	}
	if v, ok := r.Metadata[floorMetadata]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && t.Limit-t.Remaining < n {
			t.Remaining = t.Limit - n
		}
	}
	// gubernator sets the item's status to OVER_LIMIT when a hit finds it
	// empty and never clears it within the period, because without refunds
	// or limit changes the remainder cannot grow again. With them it can,
	// and the stale status would be copied into the answer to the next hit
	// even when that hit is admitted (the copy is made before the hit is
	// applied, and before this hook runs). gubernator decides refusals from
	// the remainder and sets OVER_LIMIT on the answer itself, so the
	// item's own status is never needed: keep it UNDER_LIMIT.
	t.Status = guber.Status_UNDER_LIMIT
}

// Get resumes a counter this replica does not hold from the larger of its
// checkpoint and its shadow count (what its previous owner last told this
// replica it had counted).
func (s *hookStore) Get(_ context.Context, r *guber.RateLimitReq) (*guber.CacheItem, bool) {
	if r.CreatedAt == nil {
		return nil, false
	}
	shadow, fromShadow := s.shadows.lookup(r.UniqueKey)
	checkpointed, fromCheckpoint := s.checkpointed(r.UniqueKey)
	if !fromShadow && !fromCheckpoint {
		return nil, false
	}
	spent := max(shadow, checkpointed)
	// Once per counter this replica takes over (a restart, an owner
	// change, an eviction): what it resumes from says why a budget holds,
	// or does not, across one.
	s.log.Info("Resuming a counter this replica did not hold", "counter", r.UniqueKey, "spent", spent, "limit", r.Limit,
		"checkpoint", checkpointed, "fromCheckpoint", fromCheckpoint, "peersLastHeard", shadow, "fromPeers", fromShadow)
	return &guber.CacheItem{
		Algorithm: guber.Algorithm_TOKEN_BUCKET,
		Key:       r.HashKey(),
		ExpireAt:  *r.CreatedAt + r.Duration,
		Value: &guber.TokenBucketItem{
			Status:    guber.Status_UNDER_LIMIT,
			Limit:     r.Limit,
			Duration:  r.Duration,
			Remaining: r.Limit - spent,
			CreatedAt: *r.CreatedAt,
		},
	}, true
}

// checkpointed is the Checkpoint of the counter-period uniqueKey, if it
// is for that period.
func (s *hookStore) checkpointed(uniqueKey string) (int64, bool) {
	if s.checkpoint == nil {
		return 0, false
	}
	key, start, ok := parseUniqueKey(uniqueKey)
	if !ok {
		return 0, false
	}
	spent, periodStart, ok := s.checkpoint(key)
	if !ok || (start != totalStart.UnixMilli() && periodStart.UnixMilli() != start) {
		return 0, false
	}
	return spent, true
}

func (s *hookStore) Remove(context.Context, string) {}

// uniqueKey names a counter in one period. The period start is part of the
// name so that a new period is a new gubernator item: the reset then follows
// the Engine's clock, not gubernator's expiry check.
func uniqueKey(key string, start time.Time) string {
	return key + "@" + strconv.FormatInt(start.UnixMilli(), 10)
}

func parseUniqueKey(s string) (key string, startMillis int64, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", 0, false
	}
	ms, err := strconv.ParseInt(s[i+1:], 10, 64)
	if err != nil {
		return "", 0, false
	}
	return s[:i], ms, true
}
