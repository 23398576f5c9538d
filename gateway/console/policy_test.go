package console_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// storedKey reads an APIKey as the API server has it.
func storedKey(t *testing.T, namespace, name string) *gatewayv1alpha1.APIKey {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, k); err != nil {
		t.Fatal(err)
	}
	return k
}

// putUsage writes status.usage as the gateways would after serving the key.
func putUsage(t *testing.T, namespace, name string, u gatewayv1alpha1.Usage) {
	t.Helper()
	k := storedKey(t, namespace, name)
	base := k.DeepCopy()
	k.Status.Usage = &u
	if err := env.Client.Status().Patch(context.Background(), k, client.MergeFrom(base)); err != nil {
		t.Fatalf("writing status.usage of %s/%s: %v", namespace, name, err)
	}
}

// monthStart is the start of the current calendar month (UTC).
func monthStart() time.Time {
	now := time.Now().UTC()
	return time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
}

func TestAPIPolicyEdit(t *testing.T) {
	s := startStack(t, true, nil)
	alice := s.as("alice@example.com")
	carol := s.as("carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	c, _ := alice.create(t, map[string]any{"name": "laptop"})
	carol.page(t, "")

	// A key without a policy: nothing counted, every model, no limits.
	l, _ := alice.list(t, "")
	if i := l.Items[0]; i.Models != nil || i.Limits != nil || i.Budget != nil || i.Usage != nil {
		t.Errorf("a key without a policy is listed with %+v", i)
	}

	full := map[string]any{
		"models":             []string{"gpt-4o*", " claude-sonnet-* ", "gpt-4o*", ""},
		"requestsPerMinute":  600,
		"tokensPerMinute":    200000,
		"concurrentRequests": 20,
		"budget":             "50usd/month",
	}
	// Owners cannot change their own limits; only admins can.
	if r := alice.setPolicy(t, "laptop", full); r.Status != http.StatusForbidden || r.errorCode() != "admin_required" || !strings.Contains(r.errorMessage(), gatewayv1alpha1.DefaultAdminGroup) {
		t.Errorf("the owner setting limits: %d %s, want 403 admin_required", r.Status, r.Body)
	}
	// State changes need the page's CSRF token.
	if r := carol.setPolicy(t, "laptop", full, func(r *http.Request) { r.Header.Del("X-CSRF-Token") }); r.Status != http.StatusForbidden || r.errorCode() != "csrf_failed" {
		t.Errorf("without a CSRF token: %d %s, want 403 csrf_failed", r.Status, r.Body)
	}
	if r := carol.setPolicy(t, "laptop", full, func(r *http.Request) { r.Header.Set("X-CSRF-Token", alice.token) }); r.Status != http.StatusForbidden || r.errorCode() != "csrf_failed" {
		t.Errorf("with another user's CSRF token: %d %s, want 403 csrf_failed", r.Status, r.Body)
	}
	if k := storedKey(t, s.Namespace, "laptop"); k.Spec.HasPolicy() {
		t.Fatalf("refused requests changed the key: %+v", k.Spec)
	}

	for _, tc := range []struct {
		body     map[string]any
		status   int
		code     string
		mentions string
	}{
		{map[string]any{"budget": "50 dollars"}, http.StatusBadRequest, "invalid_budget", `"50 dollars": give an amount in usd or tokens, like 50usd/month or 5Mtokens/day`},
		{map[string]any{"budget": "50usd/year"}, http.StatusBadRequest, "invalid_budget", "day, week, month or total"},
		{map[string]any{"models": []string{"gpt 4"}}, http.StatusBadRequest, "invalid_models", `"gpt 4" is not a model name or pattern`},
		{map[string]any{"requestsPerMinute": 0}, http.StatusBadRequest, "invalid_limits", "Requests per minute must be at least 1"},
		{map[string]any{"rpm": 5}, http.StatusBadRequest, "invalid_json", `unknown field "rpm" (known fields: models, requestsPerMinute`},
		// The CRD's maximum, from the API server, in its words.
		{map[string]any{"concurrentRequests": 200000}, http.StatusBadRequest, "invalid_policy", "spec.limits.concurrentRequests"},
		{map[string]any{"budget": "1usd"}, http.StatusNotFound, "not_found", "no API key named \"nope\""},
	} {
		name := "laptop"
		if tc.code == "not_found" {
			name = "nope"
		}
		if r := carol.setPolicy(t, name, tc.body); r.Status != tc.status || r.errorCode() != tc.code || !strings.Contains(r.errorMessage(), tc.mentions) {
			t.Errorf("%v: %d %s, want %d %s mentioning %q", tc.body, r.Status, r.Body, tc.status, tc.code, tc.mentions)
		}
	}

	// The admin sets everything; duplicates and blanks are dropped.
	r := carol.setPolicy(t, "laptop", full)
	if r.Status != http.StatusOK {
		t.Fatalf("the admin setting limits: %d %s", r.Status, r.Body)
	}
	spec := storedKey(t, s.Namespace, "laptop").Spec
	if !slices.Equal(spec.Models, []gatewayv1alpha1.ModelGlob{"gpt-4o*", "claude-sonnet-*"}) || spec.Limits == nil ||
		*spec.Limits.RequestsPerMinute != 600 || *spec.Limits.TokensPerMinute != 200000 || *spec.Limits.ConcurrentRequests != 20 ||
		spec.Budget == nil || spec.Budget.USD != "50" || spec.Budget.Period != gatewayv1alpha1.BudgetMonth {
		t.Errorf("stored spec after the edit: models %v, limits %+v, budget %+v", spec.Models, spec.Limits, spec.Budget)
	}
	// The answer and the very next list already show it.
	l, lr := alice.list(t, "")
	i := l.Items[0]
	if !slices.Equal(i.Models, []string{"gpt-4o*", "claude-sonnet-*"}) || i.Limits == nil || *i.Limits.RequestsPerMinute != 600 ||
		i.Budget == nil || i.Budget.Summary != "$50/month" || i.Budget.USD != "50" || i.Budget.Spent != 0 || i.Budget.Exceeded ||
		i.Usage == nil || !i.Usage.PeriodStart.Equal(monthStart()) || i.Usage.PeriodEnd == nil || !i.Usage.PeriodEnd.Equal(monthStart().AddDate(0, 1, 0)) || i.Usage.Summary != "$0 of $50" {
		t.Errorf("alice's list after the edit: %s", lr.Body)
	}
	if !strings.Contains(r.String(), `"summary":"$50/month"`) {
		t.Errorf("the edit's answer lacks the new budget: %s", r.Body)
	}

	// The key spends $60 of its $50: over budget, 120% spent.
	putUsage(t, s.Namespace, "laptop", gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(monthStart()), Requests: 12, InputTokens: 3400, OutputTokens: 900, USD: "60"})
	testenv.Eventually(t, 5*time.Second, func() error {
		l, lr = alice.list(t, "")
		if i := l.Items[0]; i.Budget == nil || !i.Budget.Exceeded || i.Budget.Spent != 1.2 || i.Usage.Requests != 12 || i.Usage.InputTokens != 3400 || i.Usage.OutputTokens != 900 || i.Usage.USD != "60" || i.Usage.Summary != "$60 of $50" {
			return fmt.Errorf("alice's list: %s", lr.Body)
		}
		return nil
	})
	if page := alice.page(t, "").String(); !strings.Contains(page, ">Over budget</span>") || !strings.Contains(page, `value="1"`) {
		t.Error("the page of a key over budget has no Over budget badge, or its meter is not full")
	}

	// Usage stored for a period that has ended counts as none.
	putUsage(t, s.Namespace, "laptop", gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(monthStart().AddDate(0, -1, 0)), Requests: 99, InputTokens: 99, USD: "99"})
	testenv.Eventually(t, 5*time.Second, func() error {
		l, lr = alice.list(t, "")
		if i := l.Items[0]; i.Budget.Exceeded || i.Budget.Spent != 0 || i.Usage.Requests != 0 || i.Usage.InputTokens != 0 || i.Usage.USD != "" || i.Usage.Summary != "$0 of $50" || !i.Usage.PeriodStart.Equal(monthStart()) {
			return fmt.Errorf("alice's list with last month's usage: %s", lr.Body)
		}
		return nil
	})

	// Empty fields remove what they stand for; the rest is replaced.
	if r := carol.setPolicy(t, "laptop", map[string]any{"requestsPerMinute": 100, "budget": "5Mtokens/day"}); r.Status != http.StatusOK {
		t.Fatalf("the admin changing limits: %d %s", r.Status, r.Body)
	}
	spec = storedKey(t, s.Namespace, "laptop").Spec
	if spec.Models != nil || spec.Limits == nil || *spec.Limits.RequestsPerMinute != 100 || spec.Limits.TokensPerMinute != nil || spec.Limits.ConcurrentRequests != nil ||
		spec.Budget == nil || spec.Budget.USD != "" || spec.Budget.Tokens == nil || *spec.Budget.Tokens != 5_000_000 || spec.Budget.Period != gatewayv1alpha1.BudgetDay {
		t.Errorf("stored spec after the second edit: models %v, limits %+v, budget %+v", spec.Models, spec.Limits, spec.Budget)
	}
	l, lr = alice.list(t, "")
	today := time.Now().UTC().Truncate(24 * time.Hour)
	if i := l.Items[0]; i.Models != nil || i.Budget == nil || i.Budget.Summary != "5M tokens/day" || i.Budget.Exceeded || i.Usage == nil || !i.Usage.PeriodStart.Equal(today) || !i.Usage.PeriodEnd.Equal(today.AddDate(0, 0, 1)) || i.Usage.Summary != "0 of 5M tokens" {
		t.Errorf("alice's list with a daily budget: %s", lr.Body)
	}

	// Removing everything leaves a key without a policy.
	if r := carol.setPolicy(t, "laptop", map[string]any{}); r.Status != http.StatusOK {
		t.Fatalf("the admin removing limits: %d %s", r.Status, r.Body)
	}
	if spec := storedKey(t, s.Namespace, "laptop").Spec; spec.HasPolicy() {
		t.Errorf("after removing everything the key still has models %v, limits %+v, budget %+v", spec.Models, spec.Limits, spec.Budget)
	}
	if status := s.chat(t, c.Key); status != http.StatusOK {
		t.Errorf("the key without limits got %d", status)
	}
}

// The namespace's guardrails bound what an admin may set from the console
// too, and the console says so in the guardrails' words.
func TestAPIPolicyEditWithinGuardrails(t *testing.T) {
	s := startStack(t, true, nil)
	carol := s.as("carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	carol.create(t, map[string]any{"name": "ci"})
	// A cluster admin binds the console's namespace to guardrails in the
	// system namespace (config/samples/guardrails.yaml).
	g := env.BindGuardrails(t, s.Namespace, map[string]string{"maxRequestsPerMinute": "100", "maxLifetime": "720h"})
	// Admission sees new bindings and params through informers: a moment
	// later. (Until then a change would be stored, and a field that does
	// not change is not checked again.)
	testenv.Eventually(t, 10*time.Second, func() error {
		k := storedKey(t, s.Namespace, "ci")
		err := env.Client.Patch(context.Background(), k, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"limits":{"requestsPerMinute":500}}}`)), client.DryRunAll)
		if err == nil {
			return fmt.Errorf("the guardrails are not in force yet")
		}
		return nil
	})
	// The defaults' (mutating) binding reaches admission through an
	// informer of its own: until it does, a new key without limits is
	// refused for lacking one rather than given the maximum.
	testenv.Eventually(t, 10*time.Second, func() error {
		ttl, err := gatewayv1alpha1.NewLifetime("24h")
		if err != nil {
			t.Fatal(err)
		}
		k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: s.Namespace, Name: "defaults-probe"},
			Spec: gatewayv1alpha1.APIKeySpec{TTL: ttl}}
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err != nil {
			return fmt.Errorf("a key within the guardrails is refused: %v", err)
		}
		if k.Spec.Limits == nil || k.Spec.Limits.RequestsPerMinute == nil || *k.Spec.Limits.RequestsPerMinute != 100 {
			return fmt.Errorf("the guardrails' defaults are not in force yet: limits %+v", k.Spec.Limits)
		}
		return nil
	})
	want := "The limits could not be saved: spec.limits.requestsPerMinute must be at most 100, as set by the guardrails of namespace " + s.Namespace + " (ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap + ")."
	testenv.Eventually(t, 10*time.Second, func() error {
		r := carol.setPolicy(t, "ci", map[string]any{"requestsPerMinute": 500})
		if r.Status != http.StatusBadRequest || r.errorCode() != "refused_by_policy" || r.errorMessage() != want {
			return fmt.Errorf("%d %s, want 400 refused_by_policy %q", r.Status, r.Body, want)
		}
		return nil
	})
	if r := carol.setPolicy(t, "ci", map[string]any{"requestsPerMinute": 100}); r.Status != http.StatusOK {
		t.Errorf("a limit within the guardrails: %d %s", r.Status, r.Body)
	}
	if l := storedKey(t, s.Namespace, "ci").Spec.Limits; l == nil || *l.RequestsPerMinute != 100 {
		t.Errorf("stored limits %+v, want 100 requests per minute", l)
	}

	// Creating a key beyond them is refused in their words too.
	r := carol.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"name": "long", "ttl": "1000h"})
	if want := "The key could not be created: the key must expire within 720h of its creation (spec.ttl or spec.expiresAt), as set by the guardrails of namespace " +
		s.Namespace + " (ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap + ")."; r.Status != http.StatusBadRequest || r.errorCode() != "refused_by_policy" || r.errorMessage() != want {
		t.Errorf("creating a key that lives too long: %d %s, want 400 refused_by_policy %q", r.Status, r.Body, want)
	}

	// Without their ConfigMap, new keys are refused, and the console says
	// why and who can fix it.
	if err := env.Client.Delete(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: g.ConfigMap}}); err != nil {
		t.Fatal(err)
	}
	attempt := 0
	testenv.Eventually(t, 10*time.Second, func() error {
		attempt++
		r := carol.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"name": fmt.Sprintf("unguarded-%d", attempt)})
		if r.Status != http.StatusConflict || r.errorCode() != "guardrails_missing" ||
			!strings.Contains(r.errorMessage(), "new keys in namespace "+s.Namespace+" are refused: the namespace has guardrails (ValidatingAdmissionPolicyBinding apikey-guardrails."+s.Namespace+")") ||
			!strings.Contains(r.errorMessage(), "Only a cluster admin can fix this") {
			return fmt.Errorf("%d %s, want 409 guardrails_missing", r.Status, r.Body)
		}
		return nil
	})
}
