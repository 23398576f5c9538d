package auth

import (
	"context"
	"sync"

	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/keyindex"
)

// inflight tracks the requests being served per key ID, so a revocation
// can end them (a stream can otherwise run for minutes). Each key's
// requests form a linked list through the requests themselves: tracking
// a request allocates nothing but the request, where a set per key would
// allocate a map for every request of a key with no other in flight.
type inflight struct {
	mu    sync.Mutex
	byKey map[string]*inflightRequest // the most recent request of each key
}

type inflightRequest struct {
	a          *Authenticator
	keyID      string
	cancel     context.CancelCauseFunc
	deadline   clock.Timer // nil when the key does not expire
	prev, next *inflightRequest
}

// track registers a request as in flight for its key until done is called.
func (a *Authenticator) track(parent context.Context, e *keyindex.Entry) (context.Context, *inflightRequest) {
	ctx, cancel := context.WithCancelCause(parent)
	req := &inflightRequest{a: a, keyID: e.KeyID, cancel: cancel}
	deadline := e.ExpiresAt
	if e.Previous && (deadline.IsZero() || e.PreviousExpiresAt.Before(deadline)) {
		// The key a rotation replaced ends with its grace period.
		deadline = e.PreviousExpiresAt
	}
	if !deadline.IsZero() {
		req.deadline = a.clock.AfterFunc(deadline.Sub(a.clock.Now()), func() { cancel(ErrKeyExpired) })
	}
	a.inflight.mu.Lock()
	if head := a.inflight.byKey[e.KeyID]; head != nil {
		head.prev, req.next = req, head
	}
	a.inflight.byKey[e.KeyID] = req
	a.inflight.mu.Unlock()
	// A change to the index between Authenticate's lookup and the
	// registration above found no request to end, and nothing will repeat
	// it. Look again now: any change after this lookup finds the request.
	if cause := a.endedSince(e); cause != nil {
		cancel(cause)
		a.metrics.streamsEnded.Inc()
	}
	return ctx, req
}

// done ends the tracking of a request that has been served.
func (r *inflightRequest) done() {
	if r.deadline != nil {
		r.deadline.Stop()
	}
	in := &r.a.inflight
	in.mu.Lock()
	switch {
	case r.prev != nil:
		r.prev.next = r.next
	case r.next != nil:
		in.byKey[r.keyID] = r.next
	default:
		delete(in.byKey, r.keyID)
	}
	if r.next != nil {
		r.next.prev = r.prev
	}
	in.mu.Unlock()
	r.cancel(nil)
}

// endedSince returns why a request authenticated with e must end, judging
// by the index now, or nil if the key still authenticates it: the same
// APIKey, usable, as e or as a newer version of it (a new lastUsedAt, a
// replaced hash Secret).
func (a *Authenticator) endedSince(e *keyindex.Entry) error {
	cur := a.index.Lookup(e.KeyID)
	if cur == e {
		// Unchanged, so only time can have ended it; track's deadline
		// covers expiry and the end of a grace period.
		return nil
	}
	switch reason := cur.Usable(a.clock.Now()); {
	case reason == keyindex.ReasonExpired:
		return ErrKeyExpired
	case reason != "", cur.UID != e.UID:
		return ErrKeyRevoked
	}
	return nil
}

// OnIndexChange ends the in-flight requests of keyID if the key can no
// longer be used, and drops its shared proof if that no longer binds to
// the key (revoked, expired, deleted, rotated, a new hash). The key index
// calls it on every change.
func (a *Authenticator) OnIndexChange(keyID string) {
	if a.proofs.Has(keyID) { // most changes (a first list of 100,000 keys) concern keys without one
		a.proofs.forget(keyID, a.index.Lookup(keyID), a.clock.Now())
	}
	a.inflight.mu.Lock()
	var reqs []*inflightRequest
	for r := a.inflight.byKey[keyID]; r != nil; r = r.next {
		reqs = append(reqs, r)
	}
	a.inflight.mu.Unlock()
	if len(reqs) == 0 {
		return
	}

	reason := a.index.Lookup(keyID).Usable(a.clock.Now())
	if reason == "" {
		return
	}
	cause := ErrKeyRevoked
	if reason == keyindex.ReasonExpired {
		cause = ErrKeyExpired
	}
	for _, r := range reqs {
		r.cancel(cause)
	}
	a.metrics.streamsEnded.Add(float64(len(reqs)))
}
