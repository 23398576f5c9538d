package policy

import (
	"context"
	"errors"
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
	"github.com/codevector/codevector/gateway/quota"
)

// failingEngine is a quota engine that cannot be reached (a peer down).
type failingEngine struct{}

var errUnreachable = errors.New("the counter's owner is unreachable")

func (failingEngine) TakeAll(context.Context, ...quota.Hit) (bool, []quota.Decision, error) {
	return false, nil, errUnreachable
}

func (failingEngine) Settle(context.Context, quota.Counter, int64) (quota.Decision, error) {
	return quota.Decision{}, errUnreachable
}

func (failingEngine) PeerList() (string, <-chan struct{}) { return "", nil }

// unreachable is an Engine started on failingEngine.
func unreachable() *Engine {
	e := NewEngine()
	e.Start(failingEngine{})
	return e
}

// With an engine that cannot count (a peer down), a key with a budget is
// refused by default and a key with limits only is served; each mode can
// be turned around.
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
			m := New(Options{Engine: unreachable(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), BudgetFailureMode: tt.budget, LimitsFailureMode: tt.limits})
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
	// An unreachable engine: the budget is served uncounted (open), as
	// while a peer is down; the spend is still priced and counted.
	m := New(Options{Engine: unreachable(), Providers: ps, Metrics: NewMetrics(reg), BudgetFailureMode: FailOpen, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
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

// Before its engine has started, a Meter counts nothing and serves
// nothing it would count: a key with limits or a budget is refused with
// 503 whatever the failure modes (both open here), never served
// uncounted; once the engine starts, the same request is counted.
func TestNothingServedUncountedBeforeTheEngineStarts(t *testing.T) {
	engine := NewEngine()
	m := New(Options{Engine: engine, BudgetFailureMode: FailOpen, LimitsFailureMode: FailOpen,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	req := metering.Request{Method: http.MethodPost, Path: "/v1/chat/completions", Model: "m", Billing: metering.BillingTokens,
		EstimatedInputTokens: 10, MaxOutputTokens: 100, Answers: 1}
	for _, tt := range []struct {
		name     string
		policy   *keyindex.Policy
		wantCode string
	}{
		{"limits", &keyindex.Policy{Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](10)}}, "limits_unavailable"},
		{"budget", &keyindex.Policy{Budget: &gatewayv1alpha1.Budget{Tokens: ptr.To[int64](1000)}}, "budget_unavailable"},
	} {
		e := &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
			Name: types.NamespacedName{Namespace: "team-a", Name: tt.name}, UID: types.UID("uid-" + tt.name), Policy: tt.policy,
		}}
		adm := (&requestMeter{m: m, e: e}).Admit(context.Background(), req)
		if adm.Refusal == nil || adm.Refusal.Status != http.StatusServiceUnavailable || adm.Refusal.Code != tt.wantCode {
			t.Fatalf("%s before the engine started: admission %+v, want 503 %s", tt.name, adm, tt.wantCode)
		}
	}

	// A key with only an allowlist counts nothing, and is served at once.
	allow := &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
		Name: types.NamespacedName{Namespace: "team-a", Name: "models"}, UID: "uid-models", Policy: &keyindex.Policy{Models: []string{"m"}},
	}}
	if adm := (&requestMeter{m: m, e: allow}).Admit(context.Background(), req); adm.Refusal != nil {
		t.Fatalf("an allowlist-only key was refused before the engine started: %+v", adm.Refusal)
	}

	q, err := quota.New(context.Background(), quota.Config{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	engine.Start(q)
	e := &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
		Name: types.NamespacedName{Namespace: "team-a", Name: "counted"}, UID: "uid-counted",
		Policy: &keyindex.Policy{Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](1)}},
	}}
	rm := &requestMeter{m: m, e: e}
	adm := rm.Admit(context.Background(), req)
	if adm.Refusal != nil {
		t.Fatalf("refused once the engine started: %+v", adm.Refusal)
	}
	adm.Settle(metering.Usage{Status: 200, InputTokens: 5, OutputTokens: 7, Complete: true})
	// Counted: the minute's one request is spent.
	if adm := rm.Admit(context.Background(), req); adm.Refusal == nil || adm.Refusal.Code != metering.CodeRateLimitExceeded {
		t.Fatalf("second request of a 1-per-minute key: admission %+v, want 429 %s", adm, metering.CodeRateLimitExceeded)
	}
}
