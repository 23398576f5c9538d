package quota

import (
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
}

// maxShadows bounds memory: about 100 bytes per counter in use.
const maxShadows = 200_000

func newShadowCounts(max int) *shadowCounts {
	return &shadowCounts{spent: map[string]shadow{}, max: max}
}

// observe records the owner's answers to reqs.
func (s *shadowCounts) observe(reqs []*guber.RateLimitReq, resps []*guber.RateLimitResp) {
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
		if _, ok := s.spent[req.UniqueKey]; !ok && len(s.spent) >= s.max {
			continue
		}
		s.spent[req.UniqueKey] = shadow{spent: spent, expireAt: *req.CreatedAt + req.Duration}
	}
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
