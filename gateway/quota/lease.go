package quota

import (
	"sync"
	"time"
)

// A lease is a local allowance of one counter in one window, taken from the
// counter's owner by a replica that does not own it. The owner counts the
// leased units when it grants them, so serving takes from a lease never
// admits more than the limit; what it costs is units leased and not used
// when the window ends (or the lease is dropped), at most the lease's size
// per replica. See doc.go, "Accuracy bound".
//
// The owner is asked for a lease along with a take the lease cannot cover
// (one forwarded take of hits + top-up), and the lease is renewed in the
// background when it runs down to half, so that takes rarely wait.
const (
	// leaseShare sizes leases: a replica holds at most 1/(leaseShare ×
	// replicas) of a counter's limit, so all replicas together hold less
	// than 1/leaseShare of it (2 %), well inside the 97-103 % that a
	// window must admit.
	leaseShare = 50
	// minLease is the smallest lease worth its under-admission: a lease of
	// one unit saves no round trip. Smaller limits are taken exactly.
	minLease = 2
	// maxLeaseWindow: only counters whose window is at most this long are
	// leased. A lease dropped on a peer change forfeits its units until
	// the window ends; for a day, a month or a total that is too long, and
	// would add up over rollouts. Budgets therefore stay exact.
	maxLeaseWindow = time.Hour
)

// leaseSize is how many units a replica leases of a counter with limit,
// among replicas replicas; 0 means the counter is not leased.
func leaseSize(limit int64, replicas int) int64 {
	replicas = max(replicas, 1)
	size := limit / (leaseShare * int64(replicas))
	if size < minLease {
		return 0
	}
	return size
}

// lease holds the state of one lease. Its mutex is held only for a few
// additions, never across a call to the owner.
//
// Invariant: balance + asked <= size. Top-ups ask at most what brings the
// lease back to size, counting the top-ups already asked, and refunds keep
// only what fits under it; the rest is owed back to the owner. That is
// what bounds the units a replica can strand to size.
type lease struct {
	size  int64     // L: the most this replica holds of the counter at once
	limit int64     // the counter's limit when the lease was made
	end   time.Time // the end of the lease's window

	mu        sync.Mutex
	balance   int64 // units granted by the owner and not yet used here
	asked     int64 // top-ups asked of the owner and not yet answered
	owed      int64 // refunds that did not fit in the lease, to give back to the owner
	ownerLeft int64 // what the owner had left, outside this lease, at its last answer
	refused   bool  // the owner refused a top-up: no more top-ups this window
	dropped   bool  // the peer list changed or the window ended: serve nothing
	syncing   bool  // a background renewal or give-back is running
}

func newLease(size, limit int64, end time.Time) *lease {
	return &lease{size: size, limit: limit, end: end, ownerLeft: limit}
}

// remaining is what the counter has left as far as this replica knows: the
// owner's figure at its last answer plus what this replica holds for it.
// Other replicas' takes since that answer are not in it. Callers hold mu.
func (l *lease) remaining() int64 { return l.ownerLeft + l.balance + l.owed }

// take serves n units from the lease. ok is false when the lease cannot
// cover n (for a read, n = 0, when it is empty): the caller asks the owner.
// startSync is true when the caller must start the background sync.
func (l *lease) take(n int64) (ok bool, remaining int64, startSync bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped || l.balance < max(n, 1) {
		return false, l.remaining(), false
	}
	l.balance -= n
	return true, l.remaining(), l.claimSync()
}

// askTopUp reserves the top-up to ask the owner for along with a take the
// lease could not cover: what brings the lease back to its size. 0 means
// ask for the hits alone (the owner refused a top-up already, or top-ups
// asked and not yet answered already fill the lease).
func (l *lease) askTopUp() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped || l.refused {
		return 0
	}
	topUp := l.size - l.balance - l.asked
	if topUp <= 0 {
		return 0
	}
	l.asked += topUp
	return topUp
}

// answered records the owner's answer to a take that carried topUp
// (0 for an exact take): whether the owner admitted it, and what it then
// had left. It returns the counter's remaining.
func (l *lease) answered(topUp int64, granted bool, ownerLeft int64) int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ownerLeft = ownerLeft
	if topUp == 0 {
		return l.remaining()
	}
	l.asked -= topUp
	switch {
	case !granted:
		// Not enough left for the top-up: the rest of the window is taken
		// exactly, so its last units go to whichever replica asks first.
		l.refused = true
	case !l.dropped:
		l.balance += topUp
	}
	// A top-up granted to a dropped lease is forfeited: the owner counted
	// it, nobody will use it. It is part of the lease's bound.
	return l.remaining()
}

// refund puts n units back: a settlement below the reservation, or the
// give-back of a refused request. What fits under the lease's size is kept
// for later takes, the rest is owed to the owner and given back in the
// background. ok is false when the lease is dropped: the caller forwards.
func (l *lease) refund(n int64) (ok bool, remaining int64, startSync bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped {
		return false, l.remaining(), false
	}
	kept := min(n, max(l.size-l.balance-l.asked, 0))
	l.balance += kept
	l.owed += n - kept
	return true, l.remaining(), l.claimSync()
}

// overdraw charges n units above a reservation to the lease when it holds
// them. ok is false otherwise: the caller forwards the settlement, which
// the owner counts even past the limit.
func (l *lease) overdraw(n int64) (ok bool, remaining int64, startSync bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dropped || l.balance < n {
		return false, l.remaining(), false
	}
	l.balance -= n
	return true, l.remaining(), l.claimSync()
}

// claimSync reports whether the lease has background work (units owed to
// the owner, or a balance down to half) and no sync running, and marks one
// as running. Callers hold mu.
func (l *lease) claimSync() bool {
	if l.syncing || (l.owed == 0 && !l.wantsRenewal()) {
		return false
	}
	l.syncing = true
	return true
}

func (l *lease) wantsRenewal() bool {
	return !l.refused && !l.dropped && l.balance+l.asked <= l.size/2
}

// nextSync is the background sync's next step: units to give back to the
// owner, or else a renewal to ask for (already counted in asked). Both
// zero ends the sync. At or after the window's end there is nothing left to
// do: the owner's counter for the window is over too. A dropped lease still
// gives back what it owes (to the counter's owner under the new peer
// list, which resumed the counter with those units counted).
func (l *lease) nextSync(now time.Time) (giveBack, renewal int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.end) {
		l.dropped = true
		l.owed = 0
	}
	switch {
	case l.owed > 0:
		giveBack, l.owed = l.owed, 0
		return giveBack, 0
	case l.wantsRenewal():
		renewal = l.size - l.balance - l.asked
		l.asked += renewal
		return 0, renewal
	}
	l.syncing = false
	return 0, 0
}

// abandon forgets a top-up whose take got no answer (the owner
// unreachable): nothing was granted, and a later take may ask again.
func (l *lease) abandon(topUp int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked -= topUp
}

// endSync ends the background sync after a failed call to the owner; the
// next take that finds work starts another.
func (l *lease) endSync() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.syncing = false
}

// gaveBack records the owner's answer to a give-back of n units. The answer
// to a settlement is the owner's state before applying it (see hookStore).
func (l *lease) gaveBack(n int64, ownerLeftBefore int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ownerLeft = ownerLeftBefore + n
}

// drop forfeits the lease: no more takes or top-ups from it.
func (l *lease) drop() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.dropped = true
}
