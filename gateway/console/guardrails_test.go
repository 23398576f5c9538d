package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// The guardrails the create dialog shows are what admission enforces:
// none in a namespace without them; in one with them, each maximum and
// the default that fills in for a field left empty (the maximum itself
// when there is no default), and an expiry that every key needs.
func TestAPIGuardrailsForTheCreateDialog(t *testing.T) {
	free := startStack(t, false, nil)
	if r := free.as("alice@example.com").do(t, http.MethodGet, "/api/v1/apikeys/guardrails", nil); r.Status != http.StatusOK || strings.TrimSpace(r.String()) != "{}" {
		t.Errorf("without guardrails: %d %s, want 200 {}", r.Status, r.Body)
	}

	s := startStack(t, false, nil)
	g := env.BindGuardrails(t, s.Namespace, map[string]string{
		"requireExpiry":         "true",
		"maxBudgetUSD":          "200",
		"maxBudgetPeriod":       "month",
		"maxConcurrentRequests": "20",
	})
	// Wait for admission to apply both the maxima and the defaults (they
	// come through informers of their own), before the console caches
	// what it learns.
	testenv.Eventually(t, 15*time.Second, func() error {
		k := &gatewayv1alpha1.APIKey{}
		k.Namespace, k.GenerateName = s.Namespace, "probe-"
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "every key needs an expiry") {
			return fmt.Errorf("a key without an expiry: %v", err)
		}
		k.Spec.TTL, _ = gatewayv1alpha1.NewLifetime("1h")
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err != nil || k.Spec.Budget == nil {
			return fmt.Errorf("the defaults are not in force yet: %v, budget %+v", err, k.Spec.Budget)
		}
		return nil
	})
	r := s.as("alice@example.com").do(t, http.MethodGet, "/api/v1/apikeys/guardrails", nil)
	var got map[string]any
	if err := json.Unmarshal(r.Body, &got); err != nil || r.Status != http.StatusOK {
		t.Fatalf("%d %s: %v", r.Status, r.Body, err)
	}
	want := map[string]any{
		"requireExpiry":             true,
		"maxBudget":                 "200usd/month",
		"maxBudgetAmount":           200.0,
		"maxBudgetUnit":             "usd",
		"maxBudgetPeriod":           "month",
		"maxBudgetText":             "$200/month",
		"defaultBudget":             "200usd/month",
		"defaultBudgetText":         "$200/month",
		"maxConcurrentRequests":     20.0,
		"defaultConcurrentRequests": 20.0,
		"setBy":                     "the guardrails of namespace " + s.Namespace + " (ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap + ")",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %v, want %v", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %v, want none", k, got[k])
		}
	}
}
