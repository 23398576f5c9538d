package quota

import (
	"slices"
	"testing"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

func utc(y int, m time.Month, d, h, min, s int) time.Time {
	return time.Date(y, m, d, h, min, s, 0, time.UTC)
}

func TestCounterSpan(t *testing.T) {
	// 2026-03-04 is a Wednesday.
	now := utc(2026, time.March, 4, 13, 45, 30)
	for _, tc := range []struct {
		name       string
		c          Counter
		now        time.Time
		start, end time.Time
		wantErr    bool
	}{
		{"minute window", Counter{Window: time.Minute}, now, utc(2026, 3, 4, 13, 45, 0), utc(2026, 3, 4, 13, 46, 0), false},
		{"hour window", Counter{Window: time.Hour}, now, utc(2026, 3, 4, 13, 0, 0), utc(2026, 3, 4, 14, 0, 0), false},
		{"minute period", Counter{Period: Minute}, now, utc(2026, 3, 4, 13, 45, 0), utc(2026, 3, 4, 13, 46, 0), false},
		{"day", Counter{Period: Day}, now, utc(2026, 3, 4, 0, 0, 0), utc(2026, 3, 5, 0, 0, 0), false},
		{"week from Wednesday", Counter{Period: Week}, now, utc(2026, 3, 2, 0, 0, 0), utc(2026, 3, 9, 0, 0, 0), false},
		{"week on Sunday", Counter{Period: Week}, utc(2026, 3, 8, 23, 0, 0), utc(2026, 3, 2, 0, 0, 0), utc(2026, 3, 9, 0, 0, 0), false},
		{"week across a month", Counter{Period: Week}, utc(2026, 3, 1, 12, 0, 0), utc(2026, 2, 23, 0, 0, 0), utc(2026, 3, 2, 0, 0, 0), false},
		{"month", Counter{Period: Month}, now, utc(2026, 3, 1, 0, 0, 0), utc(2026, 4, 1, 0, 0, 0), false},
		{"December", Counter{Period: Month}, utc(2026, 12, 31, 23, 59, 59), utc(2026, 12, 1, 0, 0, 0), utc(2027, 1, 1, 0, 0, 0), false},
		{"month in another zone is UTC", Counter{Period: Month}, time.Date(2026, 4, 1, 1, 0, 0, 0, time.FixedZone("CEST", 2*3600)), utc(2026, 3, 1, 0, 0, 0), utc(2026, 4, 1, 0, 0, 0), false},
		{"total", Counter{Period: Total}, now, totalStart, totalEnd, false},
		{"At overrides now", Counter{Period: Month, At: utc(2026, 1, 15, 0, 0, 0)}, now, utc(2026, 1, 1, 0, 0, 0), utc(2026, 2, 1, 0, 0, 0), false},
		{"no window", Counter{}, now, time.Time{}, time.Time{}, true},
		{"sub-millisecond window", Counter{Window: time.Microsecond}, now, time.Time{}, time.Time{}, true},
		{"unknown period", Counter{Period: "fortnight"}, now, time.Time{}, time.Time{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start, end, err := tc.c.Span(tc.now)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !start.Equal(tc.start) || !end.Equal(tc.end) {
				t.Errorf("span = [%s, %s), want [%s, %s)", start, end, tc.start, tc.end)
			}
		})
	}
}

func TestUniqueKeyRoundTrip(t *testing.T) {
	start := utc(2026, 3, 1, 0, 0, 0)
	key, ms, ok := parseUniqueKey(uniqueKey("ns/na@me/budget", start))
	if !ok || key != "ns/na@me/budget" || ms != start.UnixMilli() {
		t.Fatalf("got %q %d %v", key, ms, ok)
	}
	if _, _, ok := parseUniqueKey("no-period"); ok {
		t.Fatal("parsed a key without a period")
	}
}

func TestPeerInfos(t *testing.T) {
	got := peerInfos([]string{"10.0.0.3:7946", " ", "10.0.0.1:7946", "10.0.0.3:7946"}, "10.0.0.2:7946")
	want := []guber.PeerInfo{
		{GRPCAddress: "10.0.0.1:7946"},
		{GRPCAddress: "10.0.0.2:7946", IsOwner: true},
		{GRPCAddress: "10.0.0.3:7946"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("peerInfos = %+v, want %+v", got, want)
	}
	if got := peerInfos(nil, "in-process"); len(got) != 1 || !got[0].IsOwner {
		t.Fatalf("single replica: %+v", got)
	}
}
