package quota

import (
	"slices"
	"strconv"
	"sync"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

// shadowCounts remembers, for each counter and period this replica takes
// from, how much the counter's owner said was counted in its last answer.
// When the owner goes away (a replica killed mid-minute) and the counter
// moves here, gubernator has no copy of it; hookStore.Get then resumes it
// from this figure instead of from zero, so the minute of the kill admits
// about its limit rather than up to twice it. What the lost owner counted
// after this replica's last answer (a few requests at most at a steady
// rate) is the error.
//
// The same figures hand a budget back to an owner that returns (floors):
// a counter whose owner left the peer list and came back finds its old
// copy on that owner, which lacks what the interim owner counted.
//
// Only replicas with peers keep shadows: a single replica owns every
// counter and never loses one.
type shadowCounts struct {
	mu      sync.Mutex
	spent   map[string]shadow // by gubernator unique key (key@periodStart)
	max     int
	sweepAt int64
}

type shadow struct {
	spent    int64
	expireAt int64 // unix ms: the period's end
	// owner is the peer the request was sent to, for budgets (else
	// empty): once the counter has another owner, the figure is handed to
	// it as a floor before this replica's next request of it (floors).
	owner string
}

// maxShadows bounds memory: about 100 bytes per counter in use.
const maxShadows = 200_000

func newShadowCounts(max int) *shadowCounts {
	return &shadowCounts{spent: map[string]shadow{}, max: max}
}

// observe records the owner's answers to reqs, sent to owners (aligned
// with reqs, as ownersOf returns them).
func (s *shadowCounts) observe(reqs []*guber.RateLimitReq, resps []*guber.RateLimitResp, owners []string) {
	now := time.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	if now >= s.sweepAt {
		for k, v := range s.spent {
			if v.expireAt <= now {
				delete(s.spent, k)
			}
		}
		s.sweepAt = now + time.Minute.Milliseconds()
	}
	for i, r := range resps {
		if i >= len(reqs) || r == nil || r.Error != "" || reqs[i].CreatedAt == nil {
			continue
		}
		req := reqs[i]
		spent := req.Limit - r.Remaining
		if v, ok := req.Metadata[settleMetadata]; ok {
			// A settlement's answer is the state before the owner
			// applied it (see hookStore).
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				spent += n
			}
		}
		if v, ok := req.Metadata[floorMetadata]; ok {
			// So is a floor's: the owner raised its count to it after.
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				spent = max(spent, n)
			}
		}
		if _, ok := s.spent[req.UniqueKey]; !ok && len(s.spent) >= s.max {
			continue
		}
		s.spent[req.UniqueKey] = shadow{spent: spent, expireAt: *req.CreatedAt + req.Duration, owner: owners[i]}
	}
}

// floors returns, for each budget among reqs whose owner (owners, aligned
// with reqs) is not the one this replica last heard its count from, a
// request that raises the owner's count to that figure, with nothing
// taken: send them before reqs. The owner may be one that left the peer
// list and came back with its old count, or this replica's own copy from
// before it lost the counter; either lacks what the interim owner
// counted. Taking the larger count on the owner (hookStore.OnChange)
// makes every peer's last answer a lower bound of the count, whoever
// counted it.
//
// Only budgets (periods longer than maxLeaseWindow) get floors: their
// count only grows within a period, but for reservations given back
// since. A floor may count again what was given back between the answer
// it comes from and the move, so it is sent only when the counter moved,
// not on every change of the peer list (a rollout changes it twice per
// replica). A concurrency counter gives every slot back: an old answer
// may count slots freed since, which would stay taken until the counter
// restarts. A minute's counter is left to its minute.
func (s *shadowCounts) floors(reqs []*guber.RateLimitReq, owners []string) []*guber.RateLimitReq {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var floors []*guber.RateLimitReq
	for i, r := range reqs {
		if owners[i] == "" {
			continue
		}
		v, ok := s.spent[r.UniqueKey]
		if !ok || v.owner == "" || v.owner == owners[i] || v.spent <= 0 ||
			slices.ContainsFunc(floors, func(f *guber.RateLimitReq) bool { return f.UniqueKey == r.UniqueKey }) {
			continue
		}
		floors = append(floors, &guber.RateLimitReq{
			Name: r.Name, UniqueKey: r.UniqueKey, Limit: r.Limit, Duration: r.Duration,
			Algorithm: r.Algorithm, Behavior: r.Behavior, CreatedAt: r.CreatedAt,
			Metadata: map[string]string{floorMetadata: strconv.FormatInt(v.spent, 10)},
		})
	}
	return floors
}

// lookup returns the last count seen for the counter-period uniqueKey.
func (s *shadowCounts) lookup(uniqueKey string) (int64, bool) {
	if s == nil {
		return 0, false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.spent[uniqueKey]
	return v.spent, ok
}
