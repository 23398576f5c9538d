package usage

import (
	"encoding/json"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func TestSummary(t *testing.T) {
	s := Spend{Requests: 3, InputTokens: 1_000_000, OutputTokens: 200_000, USD: 3_400_000_000}
	for _, tc := range []struct {
		b    *gatewayv1alpha1.Budget
		s    Spend
		want string
	}{
		{&gatewayv1alpha1.Budget{USD: "50"}, s, "$3.40 of $50"},
		{&gatewayv1alpha1.Budget{Tokens: ptr.To[int64](5_000_000)}, s, "1.2M of 5M tokens"},
		{nil, s, "$3.40"},
		{nil, Spend{InputTokens: 900, OutputTokens: 50}, "950 tokens"},
	} {
		if got := Summary(tc.s, tc.b); got != tc.want {
			t.Errorf("Summary(%+v, %+v) = %q, want %q", tc.s, tc.b, got, tc.want)
		}
	}
}

func TestUsagePatchAddsItsShare(t *testing.T) {
	march := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	april := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	share := &pendingSpend{periodStart: april, spend: Spend{Requests: 2, InputTokens: 10, OutputTokens: 5, USD: 7}}
	for _, tc := range []struct {
		name   string
		stored *gatewayv1alpha1.Usage
		want   gatewayv1alpha1.Usage
	}{
		{"nothing stored", nil, gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(april), Requests: 2, InputTokens: 10, OutputTokens: 5, USD: "0.000000007"}},
		{"same period", &gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(april), Requests: 40, InputTokens: 100, OutputTokens: 50, USD: "1"},
			gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(april), Requests: 42, InputTokens: 110, OutputTokens: 55, USD: "1.000000007"}},
		{"an earlier period starts again", &gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(march), Requests: 40, USD: "1"},
			gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(april), Requests: 2, InputTokens: 10, OutputTokens: 5, USD: "0.000000007"}},
	} {
		raw, err := usagePatch(tc.stored, nil, share)
		if err != nil {
			t.Fatal(err)
		}
		var ops []struct {
			Op    string
			Path  string
			Value json.RawMessage
		}
		if err := json.Unmarshal(raw, &ops); err != nil || len(ops) != 2 || ops[0].Op != "test" || ops[1].Op != "add" {
			t.Fatalf("%s: patch %s", tc.name, raw)
		}
		var got gatewayv1alpha1.Usage
		if err := json.Unmarshal(ops[1].Value, &got); err != nil {
			t.Fatal(err)
		}
		got.Summary = ""
		if !got.PeriodStart.Equal(&tc.want.PeriodStart) || got.Requests != tc.want.Requests || got.InputTokens != tc.want.InputTokens ||
			got.OutputTokens != tc.want.OutputTokens || got.USD != tc.want.USD {
			t.Errorf("%s: writes %+v, want %+v", tc.name, got, tc.want)
		}
		if (tc.stored == nil) != (string(ops[0].Value) == "null") {
			t.Errorf("%s: tests for %s", tc.name, ops[0].Value)
		}
	}
}
