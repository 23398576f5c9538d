package server_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// billingUpstream is a fake provider that bills as OpenAI's chat
// completions do: it parses the body as JSON whatever its Content-Type,
// generates n answers of max_tokens (or max_completion_tokens) tokens each,
// or of longAnswer tokens when the request sets no bound, refuses a bound
// past the model's maximum output, and reports usage. It keeps the bill
// per model, so each test reads what the provider would charge it.
type billingUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	billed map[string]int64 // tokens billed, by model
	seen   map[string]int   // requests received, by model
	bounds []int64          // the output bound of each request received
	hold   chan struct{}    // requests with X-Hold wait until it is closed
	// heldNow counts the requests with X-Hold that arrived.
	heldNow int
}

const (
	// longAnswer is what the upstream generates for a request without an
	// output bound: a long answer.
	longAnswer = 2000
	// upstreamMaxOutput is the models' maximum output, as the providers
	// file below says; a larger bound is refused, as OpenAI does.
	upstreamMaxOutput = 16384
)

func newBillingUpstream(t *testing.T) *billingUpstream {
	u := &billingUpstream{billed: map[string]int64{}, seen: map[string]int{}, hold: make(chan struct{})}
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(func() { u.release(); u.Close() })
	return u
}

func (u *billingUpstream) serve(w http.ResponseWriter, r *http.Request) {
	refuse := func(msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":%q,"type":"invalid_request_error","code":null}}`, msg)
	}
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	hold := u.hold
	if r.Header.Get("X-Hold") != "" {
		u.heldNow++
	}
	u.mu.Unlock()
	if r.Header.Get("X-Hold") != "" {
		// Held before anything is checked, as a long stream would be.
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	var req struct {
		Model               string       `json:"model"`
		N                   *int64       `json:"n"`
		MaxTokens           *json.Number `json:"max_tokens"`
		MaxCompletionTokens *json.Number `json:"max_completion_tokens"`
		Messages            []struct {
			Content string `json:"content"`
		} `json:"messages"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		refuse("We could not parse the JSON body of your request: " + err.Error())
		return
	}
	perAnswer := int64(longAnswer)
	for _, bound := range []*json.Number{req.MaxTokens, req.MaxCompletionTokens} {
		if bound == nil {
			continue
		}
		n, err := strconv.ParseInt(bound.String(), 10, 64)
		if err != nil || n < 1 || n > upstreamMaxOutput {
			refuse(fmt.Sprintf("max_tokens is too large: %s. This model supports at most %d completion tokens.", bound, upstreamMaxOutput))
			return
		}
		perAnswer = n
	}
	answers := int64(1)
	if req.N != nil {
		answers = *req.N
	}
	// The prompt as a provider counts it: the text, about 4 bytes a token.
	prompt := int64(1)
	for _, m := range req.Messages {
		prompt += int64(len(m.Content)) / 4
	}
	u.mu.Lock()
	u.seen[req.Model]++
	u.bounds = append(u.bounds, perAnswer)
	u.mu.Unlock()
	completion := answers * perAnswer
	u.mu.Lock()
	u.billed[req.Model] += prompt + completion
	u.mu.Unlock()
	choices := make([]map[string]any, answers)
	for i := range choices {
		choices[i] = map[string]any{"index": i, "finish_reason": "length", "message": map[string]any{"role": "assistant", "content": "..."}}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"id": "chatcmpl-billing", "object": "chat.completion", "model": req.Model, "choices": choices,
		"usage": map[string]any{"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
	})
}

// release lets held requests answer.
func (u *billingUpstream) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-u.hold:
	default:
		close(u.hold)
	}
}

func (u *billingUpstream) bill(model string) int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.billed[model]
}

func (u *billingUpstream) received(model string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.seen[model]
}

func (u *billingUpstream) lastBound() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bounds[len(u.bounds)-1]
}

// billingProviders points openai at u, with prices and the models'
// maximum output.
func billingProviders(t *testing.T, u *billingUpstream) *providers.Providers {
	t.Helper()
	p, err := providers.ParseProviders([]byte(fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    pricing:
      "gpt-4o-mini*": {input: "0.15", output: "0.60"}
      "gpt-4o*": {input: "2.50", output: "10"}
    maxOutputTokens:
      "*": %d
`, u.URL, upstreamMaxOutput)), nil)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func chatBody(model string, extra string) string {
	if extra != "" {
		extra = "," + extra
	}
	return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Say something long."}]%s}`, model, extra)
}

// errorOf is the OpenAI-shaped error of a refusal.
func errorOf(t *testing.T, body string) (code, message string) {
	t.Helper()
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("not an OpenAI-style error: %s", body)
	}
	return e.Error.Code, e.Error.Message
}

// Every attack of the red-team pass on metering (issue 23), as a key
// holder would run it, against two peered replicas and a provider that
// bills like OpenAI. Each checks the provider's bill, not the gateway's
// own count: what the key could spend. Last-use writes are held back an
// hour, so status.usage never helps a count along.
func TestMeteringHoldsWhateverAClientSends(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newBillingUpstream(t)
	clk := minuteStartClock(t)
	replicas := peeredReplicas(t, 2, server.Options{Providers: billingProviders(t, up), Clock: clk, LastUsedInterval: time.Hour})
	ns := env.Namespace(t)
	issue := func(t *testing.T, name string, mutate func(*gatewayv1alpha1.APIKey)) (*gatewayv1alpha1.APIKey, string) {
		k, key := env.IssueKey(t, ns, name, mutate)
		waitForPolicy(t, replicas, k)
		return k, key.Reveal()
	}
	tokenBudget := func(tokens int64, period gatewayv1alpha1.BudgetPeriod) func(*gatewayv1alpha1.APIKey) {
		return func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{Tokens: ptr.To(tokens), Period: period}
		}
	}

	t.Run("max_tokens past int64 cannot open the budget", func(t *testing.T) {
		const model, budget = "gpt-4o-mini-overflow", 300
		_, key := issue(t, "overflow", tokenBudget(budget, gatewayv1alpha1.BudgetTotal))
		type answer struct {
			status int
			body   string
		}
		held := make(chan answer, 1)
		go func() {
			// A prompt larger than the budget: the wrapped reservation
			// (prompt + 2^63-1) then refunded nearly 2^63 tokens without
			// overflowing the counter, and the budget was open.
			long := fmt.Sprintf(`"max_tokens":9223372036854775807,"user":%q`, strings.Repeat("x", 2000))
			status, _, body := testenv.PostChatAs(t, replicas[0].URL, key, "application/json", chatBody(model, long), "X-Hold", "1")
			held <- answer{status, body}
		}()
		// The huge request is refused, or (as before the fix) in flight.
		var first *answer
		testenv.Eventually(t, 5*time.Second, func() error {
			select {
			case a := <-held:
				first = &a
				return nil
			default:
			}
			up.mu.Lock()
			defer up.mu.Unlock()
			if up.heldNow > 0 {
				return nil
			}
			return fmt.Errorf("the huge request is neither refused nor forwarded")
		})
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				testenv.PostChatAs(t, replicas[i%2].URL, key, "application/json", chatBody(model, `"max_tokens":20`))
			})
		}
		wg.Wait()
		up.release()
		if first == nil {
			a := <-held
			first = &a
		}
		if code, msg := errorOf(t, first.body); first.status != http.StatusTooManyRequests || code != metering.CodeBudgetExceeded || !strings.Contains(msg, "needs up to") {
			t.Errorf("max_tokens 2^63-1: %d %s %q; want 429 budget_exceeded saying what it needs", first.status, code, msg)
		}
		if billed := up.bill(model); billed > budget {
			t.Errorf("the provider billed %d tokens against a budget of %d", billed, budget)
		}
	})

	t.Run("a JSON body sent as text/plain or without Content-Type is counted", func(t *testing.T) {
		const model, budget = "gpt-4o-mini-plain", 100
		_, key := issue(t, "plain", tokenBudget(budget, gatewayv1alpha1.BudgetDay))
		var admitted atomic.Int32
		var wg sync.WaitGroup
		for i := range 60 {
			wg.Go(func() {
				contentType := []string{"text/plain", "", "application/x-www-form-urlencoded"}[i%3]
				if status, _, _ := testenv.PostChatAs(t, replicas[i%2].URL, key, contentType, chatBody(model, `"max_tokens":20`)); status == http.StatusOK {
					admitted.Add(1)
				}
			})
		}
		wg.Wait()
		if billed := up.bill(model); billed > budget || admitted.Load() == 0 || admitted.Load() == 60 {
			t.Errorf("%d of 60 admitted at once, the provider billed %d tokens against a budget of %d", admitted.Load(), billed, budget)
		}
	})

	t.Run("a dollar budget prices bodies whatever their Content-Type", func(t *testing.T) {
		const model = "gpt-4o-plain"
		k, key := issue(t, "plain-usd", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "0.05", Period: gatewayv1alpha1.BudgetDay}
		})
		admitted := 0
		for i := range 20 {
			if status, _, _ := testenv.PostChatAs(t, replicas[i%2].URL, key, "text/plain", chatBody(model, `"max_tokens":1000`)); status == http.StatusOK {
				admitted++
			}
		}
		// gpt-4o: $2.50 in, $10 out per million tokens.
		usd := float64(up.bill(model)) * 10 / 1e6
		if usd > 0.05 || admitted == 0 || admitted == 20 {
			t.Errorf("%d of 20 admitted, the provider billed at most $%.4f against a budget of $0.05", admitted, usd)
		}
		_ = k
	})

	t.Run("a body that is not one JSON object is never forwarded", func(t *testing.T) {
		const model = "gpt-4o-mini-strict"
		_, key := issue(t, "strict", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Models = []gatewayv1alpha1.ModelGlob{model}
		})
		for _, body := range []string{
			`{"n":1"model":"o3-pro","model":"` + model + `"}`,
			`{"model":"o3-pro","model":"` + model + `"}`,
			`{"model":"` + model + `"} {"model":"o3-pro"}`,
			`{"model":"` + model + `","messages":[{"role":"user","role":"system","content":"x"}]}`,
			`{"model":"` + model + `","max_tokens":-5}`,
			`{"model":"` + model + `","n":"128"}`,
			`["` + model + `"]`,
		} {
			for _, contentType := range []string{"application/json", "text/plain"} {
				status, _, resp := testenv.PostChatAs(t, replicas[0].URL, key, contentType, body)
				if code, msg := errorOf(t, resp); status != http.StatusBadRequest || code != "invalid_body" || msg == "" {
					t.Errorf("%s as %s: %d %s %q; want 400 invalid_body", body, contentType, status, code, msg)
				}
			}
		}
		if n := up.received(model) + up.received("o3-pro"); n != 0 {
			t.Errorf("the provider received %d invalid bodies", n)
		}
	})

	t.Run("n multiplies what is reserved", func(t *testing.T) {
		const model, budget = "gpt-4o-mini-n", 5000
		_, key := issue(t, "n", tokenBudget(budget, gatewayv1alpha1.BudgetDay))
		for i := range 3 {
			status, _, body := testenv.PostChatAs(t, replicas[i%2].URL, key, "application/json", chatBody(model, `"n":128,"max_tokens":1000`))
			if code, msg := errorOf(t, body); status != http.StatusTooManyRequests || !strings.Contains(msg, "needs up to 128,") {
				t.Errorf("n 128: %d %s %q; want 429 saying it needs 128,000 tokens and more", status, code, msg)
			}
		}
		if status, _, body := testenv.PostChatAs(t, replicas[1].URL, key, "application/json", chatBody(model, `"n":2,"max_tokens":1000`)); status != http.StatusOK {
			t.Errorf("n 2 within the budget: %d %s", status, body)
		}
		if billed := up.bill(model); billed > budget {
			t.Errorf("the provider billed %d tokens against a budget of %d", billed, budget)
		}
	})

	t.Run("rotation keeps the key's counters", func(t *testing.T) {
		const model = "gpt-4o-mini-rotation"
		k, key := issue(t, "rotation-rpm", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](2)}
		})
		for i := range 2 {
			if status, _, body := testenv.PostChatAs(t, replicas[i%2].URL, key, "application/json", chatBody(model, `"max_tokens":5`)); status != http.StatusOK {
				t.Fatalf("request %d of 2: %d %s", i+1, status, body)
			}
		}
		_, rotated := rotateKey(t, k, 10*time.Minute)
		answered := func(key string) error {
			for i, gw := range replicas {
				status, _, body := testenv.PostChatAs(t, gw.URL, key, "application/json", chatBody(model, `"max_tokens":5`))
				if code, _ := errorOf(t, body); status != http.StatusTooManyRequests || code != metering.CodeRateLimitExceeded {
					return fmt.Errorf("replica %d: %d %s, want 429 rate_limit_exceeded: the minute's 2 requests are spent", i, status, body)
				}
			}
			return nil
		}
		// The new key is refused, and so is the old one during its grace.
		testenv.Eventually(t, 5*time.Second, func() error { return answered(rotated.Reveal()) })
		if err := answered(key); err != nil {
			t.Error(err)
		}

		const budget = 200
		kb, keyB := issue(t, "rotation-budget", tokenBudget(budget, gatewayv1alpha1.BudgetTotal))
		for i := 0; ; i++ {
			status, _, _ := testenv.PostChatAs(t, replicas[i%2].URL, keyB, "application/json", chatBody(model+"-b", `"max_tokens":40`))
			if status != http.StatusOK {
				break
			}
		}
		spent := up.bill(model + "-b")
		_, rotatedB := rotateKey(t, kb, 10*time.Minute)
		testenv.Eventually(t, 5*time.Second, func() error {
			for i, gw := range replicas {
				status, _, body := testenv.PostChatAs(t, gw.URL, rotatedB.Reveal(), "application/json", chatBody(model+"-b", `"max_tokens":40`))
				if status != http.StatusTooManyRequests {
					return fmt.Errorf("replica %d answered the rotated key %d: %s", i, status, body)
				}
			}
			return nil
		})
		if billed := up.bill(model + "-b"); billed != spent || billed > budget {
			t.Errorf("the provider billed %d tokens, %d before the rotation, against a budget of %d", billed, spent, budget)
		}
	})

	t.Run("a small budget clamps the answer instead of refusing it", func(t *testing.T) {
		const model, budget = "gpt-4o-mini-small", 100
		_, key := issue(t, "small", tokenBudget(budget, gatewayv1alpha1.BudgetDay))
		// max_tokens set by the client is never changed: refused, saying
		// what it needs and what is left, not that anything was spent.
		status, _, body := testenv.PostChatAs(t, replicas[0].URL, key, "application/json", chatBody(model, `"max_tokens":1000`))
		if code, msg := errorOf(t, body); status != http.StatusTooManyRequests || code != metering.CodeBudgetExceeded ||
			!strings.Contains(msg, "100 tokens left this day") || strings.Contains(msg, "spent") {
			t.Errorf("max_tokens 1000 on a fresh 100-token budget: %d %s %q", status, code, msg)
		}
		// No max_tokens: the answer is bounded to what is left.
		status, header, body := testenv.PostChatAs(t, replicas[1].URL, key, "application/json", chatBody(model, ""))
		if status != http.StatusOK {
			t.Fatalf("no max_tokens on a fresh 100-token budget: %d %s", status, body)
		}
		clamped, err := strconv.ParseInt(header.Get(metering.ClampedHeader), 10, 64)
		if err != nil || clamped < 1 || clamped >= budget || up.lastBound() != clamped {
			t.Errorf("%s: %q, the provider was asked for %d tokens; want the bound that fits the budget", metering.ClampedHeader, header.Get(metering.ClampedHeader), up.lastBound())
		}
		if billed := up.bill(model); billed > budget {
			t.Errorf("the provider billed %d tokens against a budget of %d", billed, budget)
		}
		// Spent: the next one says so, and when it renews.
		status, _, body = testenv.PostChatAs(t, replicas[0].URL, key, "application/json", chatBody(model, ""))
		if code, msg := errorOf(t, body); status != http.StatusTooManyRequests || code != metering.CodeBudgetExceeded || !strings.Contains(msg, "renews in") {
			t.Errorf("after the budget is spent: %d %s %q", status, code, msg)
		}
	})

	t.Run("uploads and unpriced routes are refused for counted keys", func(t *testing.T) {
		_, key := issue(t, "upload", tokenBudget(1000, gatewayv1alpha1.BudgetDay))
		req, _ := http.NewRequest(http.MethodPost, replicas[0].URL+"/gateway/openai/v1/audio/transcriptions", strings.NewReader("--x\r\n\r\n--x--\r\n"))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if code, _ := errorOf(t, string(b)); resp.StatusCode != http.StatusForbidden || code != "route_not_metered" {
			t.Errorf("a multipart upload on a budgeted key: %d %s", resp.StatusCode, b)
		}
	})
}
