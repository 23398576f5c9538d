package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter stops a flood of wrong secrets before it reaches argon2.
//
// Per key ID, every argon2 verification takes a token: a key's owner needs
// one verification per gateway process, so a small bucket never gets in
// their way, while an attacker hammering a real key ID gets a few tries a
// minute. Per client address, only failures take tokens: a client with many
// good keys is never slowed down. Requests whose key is already in the
// verified cache never reach the limiter, so flooding a key ID cannot lock
// out an owner whose key this process has seen.
type failureLimiter struct {
	perKey    rateSpec
	perClient rateSpec

	mu      sync.Mutex
	keys    map[string]*rate.Limiter
	clients map[string]*rate.Limiter
}

type rateSpec struct {
	every time.Duration
	burst int
}

func newFailureLimiter(perKey, perClient rateSpec) *failureLimiter {
	return &failureLimiter{perKey: perKey, perClient: perClient, keys: map[string]*rate.Limiter{}, clients: map[string]*rate.Limiter{}}
}

// allow takes a verification token for keyID, unless keyID or client is
// out of tokens.
func (l *failureLimiter) allow(keyID, client string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.clients[client]; ok && c.TokensAt(now) < 1 {
		return false
	}
	return limiterFor(l.keys, keyID, l.perKey).AllowN(now, 1)
}

// failed charges a failed verification to client.
func (l *failureLimiter) failed(client string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	limiterFor(l.clients, client, l.perClient).AllowN(now, 1)
}

// sweep forgets buckets that have refilled, so memory follows the number
// of recent offenders, not of everyone ever seen.
func (l *failureLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range []map[string]*rate.Limiter{l.keys, l.clients} {
		for k, lim := range m {
			if lim.TokensAt(now) >= float64(lim.Burst()) {
				delete(m, k)
			}
		}
	}
}

func limiterFor(m map[string]*rate.Limiter, k string, s rateSpec) *rate.Limiter {
	lim, ok := m[k]
	if !ok {
		lim = rate.NewLimiter(rate.Every(s.every), s.burst)
		m[k] = lim
	}
	return lim
}
