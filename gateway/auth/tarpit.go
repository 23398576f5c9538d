package auth

import (
	"context"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
)

// tarpit slows down clients that keep getting refused. Each client address
// has an allowance of refusals (any kind: no key, malformed, unknown,
// wrong secret); once it is spent, the client's refusals are answered only
// after a delay. A closed-loop flood then sends one request per connection
// per delay instead of thousands per second, and the gateway's CPU stays
// with the keys that work. Accepted requests are never delayed, so a good
// key behind the same address (a NAT, a load balancer) is not slowed.
//
// Waiting costs a parked goroutine and an open connection (about 20 KiB),
// so at most maxHeld refusals wait at once; past that they are answered at
// once and the connection is closed, which makes the sender pay for a new
// one.
type tarpit struct {
	clock   clock.Clock
	delay   time.Duration
	perAddr rateSpec
	held    chan struct{}
	metrics *Metrics

	mu    sync.Mutex
	addrs map[string]*rate.Limiter
}

func newTarpit(c clock.Clock, delay time.Duration, perAddr rateSpec, maxHeld int, m *Metrics) *tarpit {
	return &tarpit{clock: c, delay: delay, perAddr: perAddr, held: make(chan struct{}, maxHeld), metrics: m, addrs: map[string]*rate.Limiter{}}
}

// refused charges a refusal to client and, once its allowance is spent,
// holds the caller for the delay (or until ctx ends). It reports whether
// the response should close the connection.
func (t *tarpit) refused(ctx context.Context, client string, now time.Time) (closeConn bool) {
	if t.delay <= 0 {
		return false
	}
	t.mu.Lock()
	allowed := limiterFor(t.addrs, client, t.perAddr).AllowN(now, 1)
	t.mu.Unlock()
	if allowed {
		return false
	}
	select {
	case t.held <- struct{}{}:
	default:
		t.metrics.tarpitOverflow.Inc()
		return true
	}
	t.metrics.tarpitHeld.Inc()
	t.metrics.tarpitDelayed.Inc()
	defer func() {
		<-t.held
		t.metrics.tarpitHeld.Dec()
	}()
	// Jittered, so that refusals held together are not all answered (and
	// their clients' next requests all sent) in the same instant.
	timer := t.clock.NewTimer(t.delay/2 + rand.N(t.delay))
	defer timer.Stop()
	select {
	case <-timer.C():
	case <-ctx.Done():
	}
	return false
}

func (t *tarpit) sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	sweepLimiters(t.addrs, now)
}

// writeRefusal answers a refused request, after the tarpit's delay when
// its client has been refused too often. A 503 (the gateway is busy or
// still loading keys) is not the client's doing and is not counted.
func (a *Authenticator) writeRefusal(w http.ResponseWriter, r *http.Request, f *Failure) {
	if f.Status < http.StatusInternalServerError && a.tarpit.refused(r.Context(), a.clientAddress(r), a.clock.Now()) {
		w.Header().Set("Connection", "close")
	}
	WriteFailure(w, f)
}
