package metering

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/codevector/codevector/gateway/httperr"
)

// Refusal codes (the "code" of the JSON error body), docs/design.md, section 12.3.
const (
	CodeModelNotAllowed   = "model_not_allowed"
	CodeRateLimitExceeded = "rate_limit_exceeded"
	CodeBudgetExceeded    = "budget_exceeded"
)

// Refusal is a request a RequestMeter does not admit, written as an
// OpenAI-style JSON error (gateway/httperr) with retry headers.
type Refusal struct {
	// Status is the HTTP status: 403 or 429.
	Status int
	// Type and Code are the error body's "type" and "code".
	Type, Code string
	// Message is the error body's "message", shown to the user by SDKs.
	Message string
	// RetryAfter, for a 429 or a 503, is when a retry can succeed: sent as
	// Retry-After (whole seconds, rounded up) and retry-after-ms, which
	// the OpenAI and Anthropic SDKs prefer. Zero means that waiting will
	// not help (a total budget spent); the response then says
	// x-should-retry: false, as it does for waits over a minute, which the
	// SDKs would otherwise replace by their own backoff of a few seconds
	// (the Python SDKs honour at most 60 s, openai-go 2 minutes) and so
	// retry in vain.
	RetryAfter time.Duration
	// Requests and Tokens, when set, are sent as OpenAI's
	// x-ratelimit-{limit,remaining,reset}-{requests,tokens} headers.
	Requests, Tokens *RateLimit
}

// RateLimit is the state of one limit as OpenAI's x-ratelimit-* headers
// describe it.
type RateLimit struct {
	// Limit is the most the window allows.
	Limit int64
	// Remaining is what is left of it now.
	Remaining int64
	// Reset is the time until the limit is whole again (sent as "1s",
	// "6m0s", "20ms", OpenAI's format).
	Reset time.Duration
}

// maxUsefulRetryAfter is the longest wait worth telling SDKs to retry
// after; see Refusal.RetryAfter.
const maxUsefulRetryAfter = time.Minute

// ModelNotAllowed refuses a model outside the key's allowlist: 403
// model_not_allowed naming the model.
func ModelNotAllowed(model string) *Refusal {
	msg := fmt.Sprintf("This API key may not use model %q: it is not in the key's spec.models.", truncate(model, 128))
	if model == "" {
		msg = `This API key may only use the models in its spec.models, and the request names none: set "model".`
	}
	return &Refusal{
		Status:  http.StatusForbidden,
		Type:    httperr.TypeInvalidRequest,
		Code:    CodeModelNotAllowed,
		Message: msg,
	}
}

// RateLimitExceeded refuses a request over the key's spec.limits: 429
// rate_limit_exceeded. requests and tokens may be nil.
func RateLimitExceeded(message string, retryAfter time.Duration, requests, tokens *RateLimit) *Refusal {
	return &Refusal{
		Status:     http.StatusTooManyRequests,
		Type:       "rate_limit_error",
		Code:       CodeRateLimitExceeded,
		Message:    message,
		RetryAfter: retryAfter,
		Requests:   requests,
		Tokens:     tokens,
	}
}

// BudgetExceeded refuses a request once the key's spec.budget is spent:
// 429 budget_exceeded. retryAfter is the time until the budget's period
// ends, 0 for a total budget.
func BudgetExceeded(message string, retryAfter time.Duration) *Refusal {
	return &Refusal{
		Status: http.StatusTooManyRequests,
		// OpenAI's type for an account out of credit: SDK users know it.
		Type:       "insufficient_quota",
		Code:       CodeBudgetExceeded,
		Message:    message,
		RetryAfter: retryAfter,
	}
}

func (f *Refusal) Error() string {
	return fmt.Sprintf("%d %s: %s", f.Status, f.Code, f.Message)
}

// Write writes the refusal: its headers, then the JSON error body.
func (f *Refusal) Write(w http.ResponseWriter) {
	h := w.Header()
	retryable := f.Status == http.StatusTooManyRequests || f.Status == http.StatusServiceUnavailable
	if retryable && f.RetryAfter > 0 {
		h.Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
		h.Set("Retry-After-Ms", strconv.FormatInt(int64((f.RetryAfter+time.Millisecond-1)/time.Millisecond), 10))
	}
	if f.Status == http.StatusTooManyRequests && (f.RetryAfter <= 0 || f.RetryAfter > maxUsefulRetryAfter) {
		h.Set("X-Should-Retry", "false")
	}
	setRateLimit(h, "requests", f.Requests)
	setRateLimit(h, "tokens", f.Tokens)
	status := f.Status
	if status == 0 {
		status = http.StatusForbidden
	}
	typ := f.Type
	if typ == "" {
		typ = httperr.TypeInvalidRequest
	}
	httperr.Write(w, status, typ, f.Code, f.Message)
}

func setRateLimit(h http.Header, what string, l *RateLimit) {
	if l == nil {
		return
	}
	h.Set("X-Ratelimit-Limit-"+what, strconv.FormatInt(l.Limit, 10))
	h.Set("X-Ratelimit-Remaining-"+what, strconv.FormatInt(max(l.Remaining, 0), 10))
	h.Set("X-Ratelimit-Reset-"+what, max(l.Reset, 0).Round(time.Millisecond).String())
}
