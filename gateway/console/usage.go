package console

import (
	"strconv"
	"strings"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/usage"
)

// usageItem is what a key spent in its current period (docs/design.md, section
// 12.5): its budget's period, or the calendar month (UTC) for a key without
// a budget. Figures stored for a period that has ended count as zero: that
// period's spend no longer matters, and the gateways start the new one
// from zero too.
type usageItem struct {
	PeriodStart time.Time `json:"periodStart"`
	// PeriodEnd is null for a budget over the key's whole life.
	PeriodEnd    *time.Time `json:"periodEnd"`
	Requests     int64      `json:"requests"`
	InputTokens  int64      `json:"inputTokens"`
	OutputTokens int64      `json:"outputTokens"`
	// USD is the dollars spent, a decimal string, when the models used
	// have prices; absent otherwise.
	USD string `json:"usd,omitempty"`
	// Summary is the usage as the page and `kubectl get apikeys` show it:
	// "$3.40 of $50", "1.2M of 5M tokens", "$0.02", "1.2k tokens".
	Summary string `json:"summary"`
}

// budgetItem is a key's budget and how much of it the current period has
// used.
type budgetItem struct {
	// Summary is the budget as one phrase: "$50/month", "5M tokens/day".
	Summary string                       `json:"summary"`
	Tokens  *int64                       `json:"tokens,omitempty"`
	USD     string                       `json:"usd,omitempty"`
	Period  gatewayv1alpha1.BudgetPeriod `json:"period"`
	// Spent is the fraction of the budget spent this period: 0.25 is a
	// quarter; 1 or more, all of it.
	Spent float64 `json:"spent"`
	// Exceeded: the spend has reached the budget, and the gateway refuses
	// the key (429 budget_exceeded) until the period ends.
	Exceeded bool `json:"exceeded"`
}

// policyItems describes p for a key created at created, as of now. All nil
// for a key without a policy: the gateway does not count its usage.
func policyItems(p *keyindex.Policy, created, now time.Time) (*usageItem, *budgetItem) {
	if p == nil {
		return nil, nil
	}
	start, end := usage.PeriodOf(p, created, now)
	spend := usage.StoredSpend(p.Usage, start)
	u := &usageItem{
		PeriodStart:  start.UTC(),
		PeriodEnd:    timeOf(end),
		Requests:     spend.Requests,
		InputTokens:  spend.InputTokens,
		OutputTokens: spend.OutputTokens,
		Summary:      usage.Summary(spend, p.Budget),
	}
	if spend.USD > 0 {
		u.USD = spend.USD.String()
	}
	b := p.Budget
	if b == nil {
		return u, nil
	}
	bi := &budgetItem{Summary: b.Summary(), Tokens: b.Tokens, USD: b.USD, Period: b.EffectivePeriod()}
	if b.Tokens != nil {
		used := spend.InputTokens + spend.OutputTokens
		bi.Spent, bi.Exceeded = fraction(used, *b.Tokens), used >= *b.Tokens
	} else if limit, err := gatewayv1alpha1.ParseUSD(b.USD); err == nil && limit > 0 {
		bi.Spent, bi.Exceeded = fraction(int64(spend.USD), int64(limit)), spend.USD >= limit
	}
	return u, bi
}

func fraction(used, limit int64) float64 {
	if limit <= 0 {
		return 0
	}
	return float64(used) / float64(limit)
}

// The rest formats a key's policy for the page.

// OverBudget tells whether the key has spent its budget for this period.
func (k keyItem) OverBudget() bool { return k.Budget != nil && k.Budget.Exceeded }

// BudgetMeter is the spent fraction for the page's <meter>, which cannot
// show more than all of it.
func (k keyItem) BudgetMeter() float64 { return min(k.Budget.Spent, 1) }

// BudgetPercent is the spent fraction in whole percent, rounded down, so
// a key shows 100% only once it is refused.
func (k keyItem) BudgetPercent() string {
	return strconv.FormatInt(int64(k.Budget.Spent*100), 10) + "%"
}

// PeriodText says which period the usage covers, in UTC.
func (k keyItem) PeriodText() string {
	u := k.Usage
	if u.PeriodEnd == nil {
		return "Since the key was created (the budget covers its whole life)"
	}
	// Budget periods are UTC days, weeks and months: the exact times, in
	// the page's one format (page.go), not the reader's time zone.
	return "Since " + exactText(u.PeriodStart) + "; starts again from zero on " + exactText(*u.PeriodEnd)
}

// UsageDetail is the period's counts in full: "12 requests, 3,400 input
// and 900 output tokens, $0.0213".
func (k keyItem) UsageDetail() string {
	u := k.Usage
	s := plural(u.Requests, "request") + ", " + grouped(u.InputTokens) + " input and " + grouped(u.OutputTokens) + " output tokens"
	if u.USD != "" {
		s += ", $" + u.USD
	}
	return s
}

// LimitsList is each limit in words; empty for a key without limits.
func (k keyItem) LimitsList() []string {
	l := k.Limits
	if l == nil {
		return nil
	}
	var out []string
	if l.RequestsPerMinute != nil {
		out = append(out, grouped(*l.RequestsPerMinute)+" requests per minute")
	}
	if l.TokensPerMinute != nil {
		out = append(out, grouped(*l.TokensPerMinute)+" tokens per minute")
	}
	if l.ConcurrentRequests != nil {
		out = append(out, plural(int64(*l.ConcurrentRequests), "request")+" at a time")
	}
	return out
}

// policyForm is a key's policy as the edit form's fields hold it, so the
// form opens with what the key has now.
type policyForm struct {
	Models, RequestsPerMinute, TokensPerMinute, ConcurrentRequests, Budget string
}

// PolicyForm fills the edit form.
func (k keyItem) PolicyForm() policyForm {
	f := policyForm{Models: strings.Join(k.Models, ", ")}
	if l := k.Limits; l != nil {
		f.RequestsPerMinute = optionalInt(l.RequestsPerMinute)
		f.TokensPerMinute = optionalInt(l.TokensPerMinute)
		if l.ConcurrentRequests != nil {
			f.ConcurrentRequests = strconv.Itoa(int(*l.ConcurrentRequests))
		}
	}
	if b := k.Budget; b != nil {
		// The form ParseBudget reads back: "50usd/month", "5000000tokens/day".
		if b.Tokens != nil {
			f.Budget = strconv.FormatInt(*b.Tokens, 10) + "tokens/" + string(b.Period)
		} else {
			f.Budget = b.USD + "usd/" + string(b.Period)
		}
	}
	return f
}

func optionalInt(n *int64) string {
	if n == nil {
		return ""
	}
	return strconv.FormatInt(*n, 10)
}

func plural(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return grouped(n) + " " + word + "s"
}

// grouped writes n with thousands separators: 1,200,000.
func grouped(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
