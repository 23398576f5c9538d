package auth

import (
	"context"
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
	slots   map[string]*clientSlots
}

// slotsPerClient bounds one client's verifications at a time.
const slotsPerClient = 4

type clientSlots struct {
	ch    chan struct{}
	users int // holding or waiting for a slot
}

type rateSpec struct {
	every time.Duration
	burst int
}

func newFailureLimiter(perKey, perClient rateSpec) *failureLimiter {
	return &failureLimiter{perKey: perKey, perClient: perClient, keys: map[string]*rate.Limiter{}, clients: map[string]*rate.Limiter{}, slots: map[string]*clientSlots{}}
}

// allow takes a verification token for keyID, unless keyID or client is
// out of tokens. Call it holding one of the client's verification slots
// (acquire), so that a client's failures are charged before its next
// verification is allowed.
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

// acquire takes one of client's verification slots, waiting at most until
// ctx ends; release gives it back. Without the slots, 2,000 wrong secrets
// sent at once would all pass allow before the first had failed, and all
// reach argon2. With them, a client verifies at most slotsPerClient keys
// at a time, and the rest wait their turn, so a client with many good keys
// is queued, never refused.
func (l *failureLimiter) acquire(ctx context.Context, client string) (release func(), ok bool) {
	l.mu.Lock()
	s := l.slots[client]
	if s == nil {
		s = &clientSlots{ch: make(chan struct{}, slotsPerClient)}
		l.slots[client] = s
	}
	s.users++
	l.mu.Unlock()
	leave := func() {
		l.mu.Lock()
		if s.users--; s.users == 0 {
			delete(l.slots, client)
		}
		l.mu.Unlock()
	}
	select {
	case s.ch <- struct{}{}:
		return func() { <-s.ch; leave() }, true
	case <-ctx.Done():
		leave()
		return nil, false
	}
}

// sweep forgets buckets that have refilled, so memory follows the number
// of recent offenders, not of everyone ever seen.
func (l *failureLimiter) sweep(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	sweepLimiters(l.keys, now)
	sweepLimiters(l.clients, now)
}

// sweepLimiters drops the buckets of m that are full again.
func sweepLimiters(m map[string]*rate.Limiter, now time.Time) {
	for k, lim := range m {
		if lim.TokensAt(now) >= float64(lim.Burst()) {
			delete(m, k)
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
