package v1alpha1

import (
	"testing"
	"time"

	"k8s.io/utils/ptr"
)

func TestParseUSD(t *testing.T) {
	for in, want := range map[string]NanoUSD{
		"50": 50_000_000_000, "12.5": 12_500_000_000, "0.000000001": 1, "0": 0, "999999999.999999999": 999_999_999_999_999_999,
	} {
		got, err := ParseUSD(in)
		if err != nil || got != want {
			t.Errorf("ParseUSD(%q) = %d, %v; want %d", in, got, err, want)
		}
		if back, _ := ParseUSD(got.String()); back != got {
			t.Errorf("%q: String() = %q does not parse back", in, got.String())
		}
	}
	for _, bad := range []string{"", ".5", "5.", "-1", "1e3", "1.0000000001", "$5", "1,5", "1234567890"} {
		if _, err := ParseUSD(bad); err == nil {
			t.Errorf("ParseUSD(%q) accepted", bad)
		}
	}
}

func TestDisplays(t *testing.T) {
	for n, want := range map[NanoUSD]string{0: "$0", 50_000_000_000: "$50", 3_400_000_000: "$3.40", 2_100_000: "$0.0021"} {
		if got := n.Display(); got != want {
			t.Errorf("NanoUSD(%d).Display() = %q, want %q", n, got, want)
		}
	}
	for n, want := range map[int64]string{950: "950", 12_500: "12.5k", 1_200_000: "1.2M", 5_000_000: "5M", 3_000_000_000: "3B"} {
		if got := CountDisplay(n); got != want {
			t.Errorf("CountDisplay(%d) = %q, want %q", n, got, want)
		}
	}
	for _, tc := range []struct {
		b    *Budget
		want string
	}{
		{nil, ""},
		{&Budget{USD: "50", Period: BudgetMonth}, "$50/month"},
		{&Budget{USD: "50"}, "$50/month"},
		{&Budget{Tokens: ptr.To[int64](5_000_000), Period: BudgetDay}, "5M tokens/day"},
		{&Budget{USD: "200", Period: BudgetTotal}, "$200 in total"},
	} {
		if got := tc.b.Summary(); got != tc.want {
			t.Errorf("%+v.Summary() = %q, want %q", tc.b, got, tc.want)
		}
	}
}

func TestPeriodBounds(t *testing.T) {
	created := time.Date(2026, 1, 10, 8, 0, 0, 0, time.UTC)
	// Sunday 1 March 2026, 23:30 in UTC-5 is Monday 2 March 04:30 UTC.
	now := time.Date(2026, 3, 1, 23, 30, 0, 0, time.FixedZone("EST", -5*3600))
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		p          BudgetPeriod
		start, end time.Time
	}{
		{BudgetDay, day(2026, 3, 2), day(2026, 3, 3)},
		{BudgetWeek, day(2026, 3, 2), day(2026, 3, 9)},
		{BudgetMonth, day(2026, 3, 1), day(2026, 4, 1)},
		{BudgetTotal, created, time.Time{}},
	} {
		start, end := PeriodBounds(tc.p, now, created)
		if !start.Equal(tc.start) || !end.Equal(tc.end) {
			t.Errorf("%s: [%s, %s), want [%s, %s)", tc.p, start, end, tc.start, tc.end)
		}
	}
	// A Sunday belongs to the week that started the Monday before.
	if start, _ := PeriodBounds(BudgetWeek, time.Date(2026, 3, 8, 12, 0, 0, 0, time.UTC), created); !start.Equal(day(2026, 3, 2)) {
		t.Errorf("week of Sunday 8 March starts %s, want Monday 2 March", start)
	}
}

func TestParseBudget(t *testing.T) {
	for in, want := range map[string]string{
		"50usd/month": "$50/month", "12.5usd/day": "$12.50/day", "$20": "$20/month", "5Mtokens/week": "5M tokens/week",
		"200000 tokens": "200k tokens/month", "1.5B tokens/total": "1.5B tokens in total", "250k tokens/day": "250k tokens/day",
	} {
		b, err := ParseBudget(in)
		if err != nil {
			t.Errorf("ParseBudget(%q): %v", in, err)
			continue
		}
		if got := b.Summary(); got != want {
			t.Errorf("ParseBudget(%q) = %s, want %s", in, got, want)
		}
	}
	for _, bad := range []string{"", "50", "50eur/month", "0usd", "-5usd", "50usd/year", "manytokens", "0tokens/day"} {
		if b, err := ParseBudget(bad); err == nil {
			t.Errorf("ParseBudget(%q) = %+v, want an error", bad, b)
		}
	}
}
