package auth

import (
	"context"
	"sync"

	"github.com/codevector/codevector/gateway/keyindex"
)

// inflight tracks the requests being served per key ID, so a revocation
// can end them (a stream can otherwise run for minutes).
type inflight struct {
	mu    sync.Mutex
	byKey map[string]map[*inflightRequest]struct{}
}

type inflightRequest struct {
	cancel context.CancelCauseFunc
}

// track registers a request as in flight for its key until done is called.
func (a *Authenticator) track(parent context.Context, e *keyindex.Entry) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	stopDeadline := func() bool { return false }
	deadline := e.ExpiresAt
	if e.Previous && (deadline.IsZero() || e.PreviousExpiresAt.Before(deadline)) {
		// The key a rotation replaced ends with its grace period.
		deadline = e.PreviousExpiresAt
	}
	if !deadline.IsZero() {
		t := a.clock.AfterFunc(deadline.Sub(a.clock.Now()), func() { cancel(ErrKeyExpired) })
		stopDeadline = t.Stop
	}
	req := &inflightRequest{cancel: cancel}
	a.inflight.mu.Lock()
	set := a.inflight.byKey[e.KeyID]
	if set == nil {
		set = map[*inflightRequest]struct{}{}
		a.inflight.byKey[e.KeyID] = set
	}
	set[req] = struct{}{}
	a.inflight.mu.Unlock()
	// A change to the index between Authenticate's lookup and the
	// registration above found no request to end, and nothing will repeat
	// it. Look again now: any change after this lookup finds the request.
	if cause := a.endedSince(e); cause != nil {
		cancel(cause)
		a.metrics.streamsEnded.Inc()
	}
	return ctx, func() {
		stopDeadline()
		a.inflight.mu.Lock()
		delete(set, req)
		if len(set) == 0 {
			delete(a.inflight.byKey, e.KeyID)
		}
		a.inflight.mu.Unlock()
		cancel(nil)
	}
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
	set := a.inflight.byKey[keyID]
	if len(set) == 0 {
		a.inflight.mu.Unlock()
		return
	}
	reqs := make([]*inflightRequest, 0, len(set))
	for r := range set {
		reqs = append(reqs, r)
	}
	a.inflight.mu.Unlock()

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
