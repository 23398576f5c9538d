package replicas

import (
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func leaseWith(applied string) *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationApplied: applied}}}
}

// A replica refuses a key of namespace ns revoked at rv once the watch
// that covers ns has applied rv; a replica that watches other namespaces
// only never held it.
func TestRefuses(t *testing.T) {
	for _, tc := range []struct {
		applied string
		ns      string
		rv      uint64
		want    bool
	}{
		{`{"*":"120"}`, "team-a", 120, true},
		{`{"*":"119"}`, "team-a", 120, false},
		{`{"team-a":"130","team-b":"90"}`, "team-a", 120, true},
		// Namespace b's watch has not delivered 120, whatever a's says.
		{`{"team-a":"130","team-b":"90"}`, "team-b", 120, false},
		{`{"team-a":"130"}`, "team-c", 120, true},
		{`{}`, "team-a", 1, false},
		{``, "team-a", 1, false},
		{`{"*":"x"}`, "team-a", 1, false},
	} {
		if got := refuses(leaseWith(tc.applied), tc.ns, tc.rv); got != tc.want {
			t.Errorf("applied %s, key in %s at %d: refuses = %v, want %v", tc.applied, tc.ns, tc.rv, got, tc.want)
		}
	}
}

func TestSummarySaysWhatIsTrue(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	r := Result{At: now, Elapsed: 14 * time.Millisecond, Timeout: 10 * time.Second, Replicas: []Replica{
		{Name: "gw-0", LastHeard: now.Add(-2 * time.Second), Refuses: true},
		{Name: "gw-1", LastHeard: now.Add(-3 * time.Second), Refuses: true},
		{Name: "gw-2", LastHeard: now.Add(-7 * time.Second), Refuses: true},
	}}
	for _, tc := range []struct {
		mutate    func(*Result)
		want      string
		confirmed bool
	}{
		{func(*Result) {}, "Revoked: refused by 3 of 3 gateway replicas in 14ms.", true},
		{func(r *Result) { r.Replicas[2].Refuses = false },
			"Revoked, but only 2 of 3 gateway replicas confirmed within 10s: gw-2 (last heard 7s ago) has not, and may still accept the key until its watch catches up.", false},
		{func(r *Result) { r.Replicas[0].Refuses, r.Replicas[2].Refuses = false, false },
			"Revoked, but only 1 of 3 gateway replicas confirmed within 10s: gw-0 (last heard 2s ago), gw-2 (last heard 7s ago) have not, and may still accept the key until their watches catch up.", false},
		{func(r *Result) { r.Replicas = r.Replicas[:1] }, "Revoked: refused by 1 of 1 gateway replica in 14ms.", true},
		{func(r *Result) { r.Replicas = nil }, "Revoked. No gateway replica is running (none has renewed its Lease within 30s), so none can accept the key.", true},
		{func(r *Result) { r.Lapsed = []Replica{{Name: "gw-9", LastHeard: now.Add(-45 * time.Second)}} },
			"Revoked: refused by 3 of 3 gateway replicas in 14ms. Not counted, as not heard from within 30s: gw-9, last heard 45s ago.", true},
	} {
		c := r
		c.Replicas = append([]Replica(nil), r.Replicas...)
		tc.mutate(&c)
		if got := c.Summary("revoked"); got != tc.want {
			t.Errorf("Summary:\n got %s\nwant %s", got, tc.want)
		}
		if c.Confirmed() != tc.confirmed {
			t.Errorf("Confirmed() = %v for %q", c.Confirmed(), tc.want)
		}
	}
}

func TestLeaseName(t *testing.T) {
	for name, want := range map[string]string{
		"codevector-gateway-7d9f-abcde": "codevector-gateway-7d9f-abcde",
		"My_Host-42-AB12":               "codevector-gateway-my-host-42-ab12",
		"dev":                           "codevector-gateway-dev",
	} {
		if got := LeaseName(name); got != want {
			t.Errorf("LeaseName(%q) = %q, want %q", name, got, want)
		}
	}
	if n := LeaseName(strings.Repeat("a", 300)); len(n) > 253 {
		t.Errorf("LeaseName of a long name is %d characters", len(n))
	}
}
