package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// What a key may do (docs/design.md, section 12.1): which models, how fast, how
// much. Every field is optional; a key with none of them is served exactly
// as before, at no extra cost. Admins set them (an admission policy keeps
// owners from changing them after creation) and namespace guardrails
// default and bound them.

// ModelGlob is a model name, or a pattern of one with '*' (any run of
// characters but '/') and '?' (one character). Brackets and backslashes are
// not allowed, so every pattern is well formed.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=128
// +kubebuilder:validation:Pattern=`^[A-Za-z0-9._:/@*?+-]+$`
type ModelGlob string

// Limits bound how fast a key may be used, counted across every gateway
// replica.
// +kubebuilder:validation:XValidation:rule="has(self.requestsPerMinute) || has(self.tokensPerMinute) || has(self.concurrentRequests)",message="set at least one of requestsPerMinute, tokensPerMinute, concurrentRequests (or omit limits)"
type Limits struct {
	// requestsPerMinute is the most requests started in any minute.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000
	RequestsPerMinute *int64 `json:"requestsPerMinute,omitempty"`

	// tokensPerMinute is the most tokens (input plus output, as the
	// provider reports them) per minute.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000000000
	TokensPerMinute *int64 `json:"tokensPerMinute,omitempty"`

	// concurrentRequests is the most requests in flight at once.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	ConcurrentRequests *int32 `json:"concurrentRequests,omitempty"`
}

// BudgetPeriod is the span a budget covers: a calendar day, week (from
// Monday) or month in UTC, or the key's whole life.
// +kubebuilder:validation:Enum=day;week;month;total
type BudgetPeriod string

const (
	BudgetDay   BudgetPeriod = "day"
	BudgetWeek  BudgetPeriod = "week"
	BudgetMonth BudgetPeriod = "month"
	BudgetTotal BudgetPeriod = "total"
)

// Budget caps what a key spends per period, in tokens or in US dollars.
// +kubebuilder:validation:XValidation:rule="has(self.tokens) != has(self.usd)",message="set exactly one of tokens or usd"
type Budget struct {
	// tokens is the most tokens (input plus output) per period.
	// +optional
	// +kubebuilder:validation:Minimum=1
	Tokens *int64 `json:"tokens,omitempty"`

	// usd is the most US dollars per period, as a decimal string ("50",
	// "12.5"), priced from the providers file's pricing: per model. A
	// model without a price is refused for a key with a dollar budget.
	// +optional
	// +kubebuilder:validation:MaxLength=16
	// +kubebuilder:validation:Pattern=`^[0-9]{1,9}(\.[0-9]{1,6})?$`
	// +kubebuilder:validation:XValidation:rule="double(self) > 0.0",message="usd must be more than 0"
	USD string `json:"usd,omitempty"`

	// period is day, week, month (calendar, UTC) or total; month when
	// omitted.
	// +optional
	// +kubebuilder:default=month
	Period BudgetPeriod `json:"period,omitempty"`
}

// Usage is what a key spent in the current budget period (or, for a key
// without a budget, the current calendar month), as the gateways counted
// it. The gateways write it at most every --last-used-interval with
// conditional patches, so counts never go backwards and replicas never
// overwrite each other's share; it is also what a restarted gateway
// resumes from.
type Usage struct {
	// periodStart is when the current period began (UTC).
	PeriodStart metav1.Time `json:"periodStart"`
	// requests admitted in the period.
	// +optional
	Requests int64 `json:"requests,omitempty"`
	// inputTokens counted in the period (prompt, including cached input).
	// +optional
	InputTokens int64 `json:"inputTokens,omitempty"`
	// outputTokens counted in the period.
	// +optional
	OutputTokens int64 `json:"outputTokens,omitempty"`
	// usd spent in the period, a decimal string, when prices are known.
	// +optional
	USD string `json:"usd,omitempty"`
	// summary is the usage as `kubectl get apikeys` shows it ("1.2M
	// tokens", "$3.40 of $50").
	// +optional
	Summary string `json:"summary,omitempty"`
}
