package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HasPolicy reports whether the key has any per-key policy. Keys without
// one take the gateway's plain path: no counters, no body parsing.
func (s *APIKeySpec) HasPolicy() bool {
	return len(s.Models) > 0 || s.Limits != nil || s.Budget != nil
}

// NanoUSD is an amount of US dollars in billionths, the unit the gateways
// count dollar budgets in: a price of $0.075 per million tokens is 75
// nano-dollars per token, so every price with up to three decimals per
// million tokens is exact. int64 holds about 9.2 billion dollars.
type NanoUSD int64

const nanosPerDollar = 1_000_000_000

// ParseUSD reads a decimal dollar amount ("50", "12.5", "0.000001"), as
// spec.budget.usd and status.usage.usd hold it.
func ParseUSD(s string) (NanoUSD, error) {
	whole, frac, hasFrac := strings.Cut(s, ".")
	if whole == "" || (hasFrac && frac == "") || len(frac) > 9 || len(whole) > 9 {
		return 0, fmt.Errorf("%q is not a dollar amount like 50 or 12.5 (at most 9 decimals)", s)
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a dollar amount like 50 or 12.5", s)
	}
	var f uint64
	if hasFrac {
		if f, err = strconv.ParseUint(frac+strings.Repeat("0", 9-len(frac)), 10, 64); err != nil {
			return 0, fmt.Errorf("%q is not a dollar amount like 50 or 12.5", s)
		}
	}
	return NanoUSD(w*nanosPerDollar + f), nil
}

// String is the exact decimal amount without trailing zeros ("12.5", "0").
func (n NanoUSD) String() string {
	sign := ""
	if n < 0 {
		sign, n = "-", -n
	}
	whole, frac := int64(n)/nanosPerDollar, int64(n)%nanosPerDollar
	if frac == 0 {
		return sign + strconv.FormatInt(whole, 10)
	}
	return sign + strconv.FormatInt(whole, 10) + "." + strings.TrimRight(fmt.Sprintf("%09d", frac), "0")
}

// Display is the amount as people read it: "$3.40", "$0.0021", "$50".
func (n NanoUSD) Display() string {
	d := float64(n) / nanosPerDollar
	switch {
	case n == 0:
		return "$0"
	case n%nanosPerDollar == 0:
		return "$" + strconv.FormatInt(int64(n)/nanosPerDollar, 10)
	case d >= 0.01 || d <= -0.01:
		return "$" + strconv.FormatFloat(d, 'f', 2, 64)
	default:
		return "$" + strconv.FormatFloat(d, 'g', 2, 64)
	}
}

// CountDisplay shows a count of tokens or requests the short way: 950,
// 12.5k, 1.2M, 3B.
func CountDisplay(n int64) string {
	abs := n
	if abs < 0 {
		abs = -abs
	}
	for _, u := range []struct {
		size   int64
		suffix string
	}{{1_000_000_000, "B"}, {1_000_000, "M"}, {1_000, "k"}} {
		if abs >= u.size {
			s := strconv.FormatFloat(float64(n)/float64(u.size), 'f', 1, 64)
			return strings.TrimSuffix(s, ".0") + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// Summary is the budget as one short phrase: "$50/month", "5M tokens/day",
// "$200 in total". Empty for a nil budget.
func (b *Budget) Summary() string {
	if b == nil {
		return ""
	}
	amount := ""
	if b.Tokens != nil {
		amount = CountDisplay(*b.Tokens) + " tokens"
	} else if usd, err := ParseUSD(b.USD); err == nil {
		amount = usd.Display()
	} else {
		amount = "$" + b.USD
	}
	if b.EffectivePeriod() == BudgetTotal {
		return amount + " in total"
	}
	return amount + "/" + string(b.EffectivePeriod())
}

// EffectivePeriod is the period, month when unset (as the API server
// defaults it).
func (b *Budget) EffectivePeriod() BudgetPeriod {
	if b == nil || b.Period == "" {
		return BudgetMonth
	}
	return b.Period
}

// PeriodBounds returns the calendar period (UTC) that contains now: its
// start and the start of the next one. Weeks start on Monday (ISO 8601).
// The total period starts at created and never ends (zero end).
func PeriodBounds(p BudgetPeriod, now, created time.Time) (start, end time.Time) {
	now = now.UTC()
	y, m, d := now.Date()
	switch p {
	case BudgetDay:
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1)
	case BudgetWeek:
		sinceMonday := (int(now.Weekday()) + 6) % 7
		start = time.Date(y, m, d-sinceMonday, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 7)
	case BudgetTotal:
		return created.UTC(), time.Time{}
	default: // month
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0)
	}
}

// ParseBudget reads a budget as people write it on a command line or in a
// form: an amount with its unit, optionally a period (month by default):
// "50usd/month", "12.5usd/day", "5Mtokens/week", "200000 tokens", "$20".
func ParseBudget(s string) (*Budget, error) {
	text := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(s), " ", ""))
	amount, period, hasPeriod := strings.Cut(text, "/")
	b := &Budget{Period: BudgetMonth}
	if hasPeriod {
		switch p := BudgetPeriod(period); p {
		case BudgetDay, BudgetWeek, BudgetMonth, BudgetTotal:
			b.Period = p
		default:
			return nil, fmt.Errorf("budget %q: the period after / must be day, week, month or total", s)
		}
	}
	switch {
	case strings.HasPrefix(amount, "$") || strings.HasSuffix(amount, "usd"):
		usd := strings.TrimSuffix(strings.TrimPrefix(amount, "$"), "usd")
		n, err := ParseUSD(usd)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("budget %q: %s is not a dollar amount above 0 like 50 or 12.5", s, usd)
		}
		b.USD = n.String()
	case strings.HasSuffix(amount, "tokens"):
		count := strings.TrimSuffix(amount, "tokens")
		n, err := parseCount(count)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("budget %q: %s is not a token count above 0 like 5000000 or 5M", s, count)
		}
		b.Tokens = &n
	default:
		return nil, fmt.Errorf("budget %q: give an amount in usd or tokens, like 50usd/month or 5Mtokens/day", s)
	}
	return b, nil
}

// parseCount reads 5000000, 250k, 5M or 1.5B.
func parseCount(s string) (int64, error) {
	mult := 1.0
	switch {
	case strings.HasSuffix(s, "k"):
		mult, s = 1e3, strings.TrimSuffix(s, "k")
	case strings.HasSuffix(s, "m"):
		mult, s = 1e6, strings.TrimSuffix(s, "m")
	case strings.HasSuffix(s, "b"):
		mult, s = 1e9, strings.TrimSuffix(s, "b")
	}
	if mult == 1 {
		return strconv.ParseInt(s, 10, 64)
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f*mult > 1e15 {
		return 0, fmt.Errorf("%q is not a count", s)
	}
	return int64(f * mult), nil
}
