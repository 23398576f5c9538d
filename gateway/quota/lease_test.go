package quota

import (
	"testing"
	"time"
)

func TestLeaseSize(t *testing.T) {
	for _, tc := range []struct {
		limit    int64
		replicas int
		want     int64
	}{
		{600, 1, 12},  // a single replica leases from itself
		{99, 1, 0},    // 1.98: not worth a lease
		{600, 3, 4},   // 600 / 150
		{299, 3, 0},   // 1.99: not worth a lease
		{300, 3, 2},   // the smallest lease
		{6000, 3, 40}, // 6,000 tokens a minute
		{6000, 2, 60}, // fewer replicas, larger leases
		{1_000_000_000, 3, 6_666_666},
	} {
		if got := leaseSize(tc.limit, tc.replicas); got != tc.want {
			t.Errorf("leaseSize(%d, %d) = %d, want %d", tc.limit, tc.replicas, got, tc.want)
		}
	}
}

// The accounting of one lease, without an owner: every step keeps
// balance + asked <= size, which bounds what a replica strands.
func TestLeaseAccounting(t *testing.T) {
	end := testStart.Add(time.Minute)
	l := newLease(40, 6000, end)
	check := func(step string, balance, asked, owed int64) {
		t.Helper()
		if l.balance != balance || l.asked != asked || l.owed != owed {
			t.Fatalf("%s: balance %d asked %d owed %d, want %d %d %d", step, l.balance, l.asked, l.owed, balance, asked, owed)
		}
		if l.balance+l.asked > l.size {
			t.Fatalf("%s: balance %d + asked %d is over the size %d", step, l.balance, l.asked, l.size)
		}
	}

	if ok, _, _ := l.take(1); ok {
		t.Fatal("an empty lease served a take")
	}
	if ok, _, _ := l.take(0); ok {
		t.Fatal("an empty lease answered a read")
	}
	// The first take asks for the whole lease along with its hits; a
	// concurrent one finds it asked for and goes exact.
	if got := l.askTopUp(); got != 40 {
		t.Fatalf("first top-up %d, want 40", got)
	}
	if got := l.askTopUp(); got != 0 {
		t.Fatalf("concurrent top-up %d, want 0", got)
	}
	check("asked", 0, 40, 0)
	if got := l.answered(40, true, 5000); got != 5040 {
		t.Fatalf("remaining after the grant %d, want 5040 (owner's 5000 + the lease)", got)
	}
	check("granted", 40, 0, 0)

	// Takes are local until half is used; then a renewal is due.
	if ok, rem, sync := l.take(19); !ok || rem != 5021 || sync {
		t.Fatalf("take 19: ok %v remaining %d sync %v", ok, rem, sync)
	}
	ok, _, sync := l.take(1)
	if !ok || !sync {
		t.Fatalf("take down to half: ok %v sync %v, want a sync", ok, sync)
	}
	if _, _, again := l.take(1); again {
		t.Fatal("a second sync started while one runs")
	}
	if give, renew := l.nextSync(testStart); give != 0 || renew != 21 {
		t.Fatalf("nextSync = %d, %d, want a renewal of 21", give, renew)
	}
	check("renewing", 19, 21, 0)

	// A refund while the renewal is out keeps only what fits.
	if ok, rem, _ := l.refund(10); !ok || rem != 5000+19+10 {
		t.Fatalf("refund: ok %v remaining %d", ok, rem)
	}
	check("refund kept", 19, 21, 10)
	l.answered(21, true, 4979)
	check("renewed", 40, 0, 10)
	if give, renew := l.nextSync(testStart); give != 10 || renew != 0 {
		t.Fatalf("nextSync = %d, %d, want a give-back of 10", give, renew)
	}
	l.gaveBack(10, 4979)
	if give, renew := l.nextSync(testStart); give != 0 || renew != 0 || l.syncing {
		t.Fatalf("nextSync = %d, %d (syncing %v), want the sync over", give, renew, l.syncing)
	}

	// An overdraw the lease covers comes out of it; a larger one does not.
	if ok, _, _ := l.overdraw(15); !ok {
		t.Fatal("overdraw of 15 from 40 refused")
	}
	if ok, _, _ := l.overdraw(26); ok {
		t.Fatal("overdraw of 26 from 25 served")
	}
	check("overdrawn", 25, 0, 0)

	// A refused top-up ends leasing for the window; the balance still serves.
	l.take(10)
	l.nextSync(testStart) // the renewal the take claimed
	l.answered(25, false, 3)
	check("refused", 15, 0, 0)
	if l.askTopUp() != 0 || l.wantsRenewal() {
		t.Fatal("a refused lease asks for more")
	}
	if ok, _, _ := l.take(15); !ok {
		t.Fatal("a refused lease did not serve its balance")
	}

	// A dropped lease serves nothing and is not refunded into.
	l.refund(5)
	l.drop()
	if ok, _, _ := l.take(1); ok {
		t.Fatal("a dropped lease served a take")
	}
	if ok, _, _ := l.refund(1); ok {
		t.Fatal("a dropped lease took a refund")
	}
	// At the window's end nothing is owed any more: the owner's counter for
	// the window is gone too.
	l = newLease(40, 6000, end)
	l.answered(l.askTopUp(), true, 0)
	l.refund(30)
	if give, _ := l.nextSync(end); give != 0 {
		t.Fatalf("gave back %d after the window ended", give)
	}
}
