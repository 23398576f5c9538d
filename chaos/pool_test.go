package chaos

import (
	"math/rand/v2"
	"sync"
	"time"
)

// poolKey is what the harness knows of one APIKey: its secrets (never
// written to the history) and what the load may still do with it.
type poolKey struct {
	name    string
	secrets []string // by generation
	policy  Policy
	hot     bool // a tenth of the keys get half the load, to reach their limits
	// retiredAt is when a revocation or deletion began, or the expiry:
	// the load keeps trying a retired key for a while, to catch a replica
	// that still serves it.
	retiredAt time.Time
	expiresAt time.Time
	graceEnd  time.Time // of the previous secret, after a rotation
	busy      bool      // an operation on it is under way
}

// pool is the run's keys.
type pool struct {
	mu   sync.Mutex
	keys map[string]*poolKey
	// names in creation order, so that a seed picks the same key each time.
	names []string
}

func newPool() *pool { return &pool{keys: map[string]*poolKey{}} }

func (p *pool) add(k *poolKey) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.keys[k.name] = k
	p.names = append(p.names, k.name)
}

// pick chooses what the next request uses: mostly a live key (half the
// time a hot one), its current secret or, within its grace, the one
// before; sometimes a key retired in the last minute or a secret whose
// grace ended, which every replica must refuse. concurrency: the key has a
// concurrency limit (its requests are held at the provider, holdUser).
func (p *pool) pick(rng *rand.Rand, now time.Time) (name string, gen int, secret string, concurrency bool, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var live, hot, retired []*poolKey
	for _, n := range p.names {
		k := p.keys[n]
		switch {
		case !k.retiredAt.IsZero() || (!k.expiresAt.IsZero() && now.After(k.expiresAt)):
			since := k.retiredAt
			if since.IsZero() {
				since = k.expiresAt
			}
			if now.Sub(since) < time.Minute {
				retired = append(retired, k)
			}
		case k.hot:
			hot = append(hot, k)
			live = append(live, k)
		default:
			live = append(live, k)
		}
	}
	var k *poolKey
	switch x := rng.IntN(100); {
	case x < 4 && len(retired) > 0:
		k = retired[rng.IntN(len(retired))]
	case x < 50 && len(hot) > 0:
		k = hot[rng.IntN(len(hot))]
	case len(live) > 0:
		k = live[rng.IntN(len(live))]
	default:
		return "", 0, "", false, false
	}
	gen = len(k.secrets) - 1
	if gen > 0 && rng.IntN(5) == 0 && now.Sub(k.graceEnd) < 30*time.Second {
		gen-- // the previous secret, in its grace or just after
	}
	return k.name, gen, k.secrets[gen], k.policy.ConcurrentRequests > 0, true
}

// choose picks a key for an operation: live, not busy, cold unless hot
// is asked for; it marks it busy.
func (p *pool) choose(rng *rand.Rand, now time.Time, accept func(*poolKey) bool) *poolKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*poolKey
	for _, n := range p.names {
		k := p.keys[n]
		if k.busy || !k.retiredAt.IsZero() || (!k.expiresAt.IsZero() && now.Add(10*time.Second).After(k.expiresAt)) || !accept(k) {
			continue
		}
		out = append(out, k)
	}
	if len(out) == 0 {
		return nil
	}
	k := out[rng.IntN(len(out))]
	k.busy = true
	return k
}

// retire marks k retired from at, while the operation that retires it
// (still busy) runs.
func (p *pool) retire(k *poolKey, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k.retiredAt = at
}

// update changes k under the pool's lock and ends its operation.
func (p *pool) update(k *poolKey, f func(*poolKey)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(k)
	k.busy = false
}

// live lists the keys that should work now, with their current secret.
func (p *pool) live(now time.Time) []*poolKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*poolKey
	for _, n := range p.names {
		k := p.keys[n]
		if k.retiredAt.IsZero() && !k.busy && (k.expiresAt.IsZero() || now.Add(10*time.Second).Before(k.expiresAt)) {
			c := *k
			c.secrets = append([]string(nil), k.secrets...)
			out = append(out, &c)
		}
	}
	return out
}

// secrets maps every secret part handed out to its key's name, for the
// leak scan.
func (p *pool) secrets() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[string]string{}
	for _, k := range p.keys {
		for _, s := range k.secrets {
			out[secretPart(s)] = k.name
		}
	}
	return out
}
