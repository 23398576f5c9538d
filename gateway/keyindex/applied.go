package keyindex

import (
	"maps"
	"sync"
)

// applied records how far each APIKey watch has brought the index: for
// each watch scope (a namespace, or "" for the watch of all namespaces),
// the resource version of the last event (or list) of that watch whose
// effect is in the index. A watch delivers its events in resource-version
// order, so every change to an APIKey of that scope up to that version is
// in the index: a key revoked or deleted at or before it is refused, and
// the requests in flight with it have been ended (the index's onChange
// runs before the store returns). Package gateway/replicas publishes it so
// that `kubectl apikey revoke` and the console can wait until every
// replica refuses a key.
//
// Per scope, not one number: with one watch per namespace, a watch of
// namespace a at version 120 says nothing of namespace b's watch, which
// may not have delivered version 110 yet.
type applied struct {
	mu       sync.Mutex
	versions map[string]uint64
	// refusals has room for one signal: an event that refuses a key
	// (revoked, deleting or deleted) or a full list is in the index, so
	// the applied versions are worth publishing now rather than at the
	// next heartbeat.
	refusals chan struct{}
}

func newApplied() *applied {
	return &applied{versions: map[string]uint64{}, refusals: make(chan struct{}, 1)}
}

// note records that the watch of scope has applied everything up to rv.
// Versions only move forward (a fresh watch after an outage starts from a
// list at least as recent).
func (a *applied) note(scope string, rv uint64, refuses bool) {
	if rv == 0 {
		return
	}
	a.mu.Lock()
	if rv > a.versions[scope] {
		a.versions[scope] = rv
	}
	a.mu.Unlock()
	if refuses {
		select {
		case a.refusals <- struct{}{}:
		default:
		}
	}
}

// AppliedVersions returns, per APIKey watch scope (a namespace, or "" for
// all namespaces), the resource version up to which the index holds every
// change of that scope's APIKeys: a key revoked or deleted at or before it
// is refused. A scope the index does not watch has no entry (and its keys
// are refused anyway: they are never in the index).
func (ix *Index) AppliedVersions() map[string]uint64 {
	ix.applied.mu.Lock()
	defer ix.applied.mu.Unlock()
	return maps.Clone(ix.applied.versions)
}

// Refusals receives a value soon after the index applies a change that
// refuses a key (a revocation, a deletion) or a full list of APIKeys: the
// moment to publish AppliedVersions. Signals coalesce.
func (ix *Index) Refusals() <-chan struct{} { return ix.applied.refusals }
