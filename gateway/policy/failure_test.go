package policy

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/providers"
)

// With no engine to count in (not started yet, or unreachable), a key
// with a budget is refused by default and a key with limits only is
// served; each mode can be turned around.
func TestFailureModes(t *testing.T) {
	entry := func(p *keyindex.Policy) *keyindex.Entry {
		return &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
			Name: types.NamespacedName{Namespace: "team-a", Name: "k"}, UID: "uid-1", Policy: p,
		}}
	}
	budget := &keyindex.Policy{Budget: &gatewayv1alpha1.Budget{Tokens: ptr.To[int64](1000)}}
	limits := &keyindex.Policy{Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](10)}}
	req := metering.Request{Method: http.MethodPost, Path: "/v1/chat/completions", Model: "m", Billing: metering.BillingTokens,
		EstimatedInputTokens: 10, MaxOutputTokens: 100, Answers: 1}
	tests := []struct {
		name           string
		budget, limits FailureMode
		policy         *keyindex.Policy
		wantCode       string // "" admitted
	}{
		{"budget, default", "", "", budget, "budget_unavailable"},
		{"budget, open", FailOpen, "", budget, ""},
		{"limits, default", "", "", limits, ""},
		{"limits, closed", "", FailClosed, limits, "limits_unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BudgetFailureMode: tt.budget, LimitsFailureMode: tt.limits})
			rm := &requestMeter{m: m, e: entry(tt.policy)}
			adm := rm.Admit(context.Background(), req)
			switch {
			case tt.wantCode == "" && (adm.Refusal != nil || adm.Settle == nil):
				t.Fatalf("refused %+v, want it served uncounted", adm.Refusal)
			case tt.wantCode != "" && (adm.Refusal == nil || adm.Refusal.Code != tt.wantCode || adm.Refusal.Status != http.StatusServiceUnavailable || adm.Refusal.RetryAfter <= 0):
				t.Fatalf("admission %+v, want 503 %s with Retry-After", adm.Refusal, tt.wantCode)
			}
			if adm.Settle != nil {
				adm.Settle(metering.Usage{Status: 200, InputTokens: 5, OutputTokens: 7, Complete: true})
			}
		})
	}
	if _, err := ParseFailureMode("sometimes"); err == nil {
		t.Error(`ParseFailureMode("sometimes") accepted`)
	}
}

// What a key with a dollar budget spent is counted by owner in dollars,
// priced from the providers file: the dashboard's spend table.
func TestSpendIsCountedByOwner(t *testing.T) {
	ps, err := providers.ParseProviders([]byte(`providers:
  openai:
    baseURL: http://upstream.invalid
    pricing:
      "gpt-4o": {input: "2.50", output: "10"}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	// No engine: the budget is served uncounted (open), as while a peer is
	// down; the spend is still priced and counted.
	m := New(Options{Providers: ps, Metrics: NewMetrics(reg), BudgetFailureMode: FailOpen, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	e := &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
		Name: types.NamespacedName{Namespace: "team-a", Name: "k"}, UID: "uid-1", Owner: "alice@example.com",
		Policy: &keyindex.Policy{Budget: &gatewayv1alpha1.Budget{USD: "50"}},
	}}
	adm := (&requestMeter{m: m, e: e}).Admit(context.Background(), metering.Request{Provider: "openai", Method: http.MethodPost,
		Path: "/v1/chat/completions", Model: "gpt-4o", Billing: metering.BillingTokens, EstimatedInputTokens: 10, MaxOutputTokens: 100, Answers: 1})
	if adm.Refusal != nil {
		t.Fatal(adm.Refusal)
	}
	adm.Settle(metering.Usage{Status: 200, InputTokens: 1000, OutputTokens: 2000, Complete: true})
	// 1,000 × $2.50 + 2,000 × $10 per million: $0.0225.
	if got := testutil.ToFloat64(m.metrics.spend.WithLabelValues("team-a", "alice@example.com")); math.Abs(got-0.0225) > 1e-12 {
		t.Errorf("codevector_gateway_policy_spend_usd_total = %v, want 0.0225", got)
	}
}
