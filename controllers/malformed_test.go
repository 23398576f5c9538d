package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Issue 25, item 4: an APIKey with a field of the wrong type is refused
// with the API server's own schema error naming the field, never with Go
// internals from an admission policy that stumbled over it, whether or
// not the namespace has guardrails (whose mutating policy reads more of
// the spec).
func TestMalformedKeysGetSchemaErrors(t *testing.T) {
	ctx := context.Background()
	plain := env.Namespace(t)
	guarded := env.Namespace(t)
	env.BindGuardrails(t, guarded, nil)
	waitForGuardrails(t, guarded)

	for _, tc := range []struct {
		name  string
		spec  map[string]any
		field string
	}{
		{"models a string", map[string]any{"models": "gpt-4o*"}, "spec.models"},
		{"models a number", map[string]any{"models": int64(4)}, "spec.models"},
		{"models of numbers", map[string]any{"models": []any{int64(1)}}, "spec.models"},
		{"models an object", map[string]any{"models": map[string]any{"gpt-4o": true}}, "spec.models"},
		{"budget usd a number", map[string]any{"budget": map[string]any{"usd": int64(50)}}, "spec.budget.usd"},
		{"budget a string", map[string]any{"budget": "50usd/month"}, "spec.budget"},
		{"budget tokens a string", map[string]any{"budget": map[string]any{"tokens": "5M"}}, "spec.budget.tokens"},
		{"budget period a number", map[string]any{"budget": map[string]any{"usd": "5", "period": int64(30)}}, "spec.budget.period"},
		{"limits a list", map[string]any{"limits": []any{"600"}}, "spec.limits"},
		{"limits a string", map[string]any{"limits": "600rpm"}, "spec.limits"},
		{"rpm a string", map[string]any{"limits": map[string]any{"requestsPerMinute": "600"}}, "spec.limits.requestsPerMinute"},
		{"tpm a float", map[string]any{"limits": map[string]any{"tokensPerMinute": 1.5}}, "spec.limits.tokensPerMinute"},
		{"concurrency a bool", map[string]any{"limits": map[string]any{"concurrentRequests": true}}, "spec.limits.concurrentRequests"},
		{"ttl a number", map[string]any{"ttl": int64(30)}, "spec.ttl"},
		{"expiresAt a number", map[string]any{"expiresAt": int64(1767225600)}, "spec.expiresAt"},
		{"expiresAt a date", map[string]any{"expiresAt": "next year"}, "spec.expiresAt"},
		{"owner a number", map[string]any{"owner": int64(7)}, "spec.owner"},
		{"owner a list", map[string]any{"owner": []any{"alice"}}, "spec.owner"},
		{"displayName an object", map[string]any{"displayName": map[string]any{"en": "laptop"}}, "spec.displayName"},
		{"revoked a string", map[string]any{"revoked": "yes"}, "spec.revoked"},
		{"revealPublicKey a number", map[string]any{"revealPublicKey": int64(1)}, "spec.revealPublicKey"},
		{"spec a string", nil, "spec"},
		{"spec a list", map[string]any{"__list": true}, "spec"},
	} {
		for _, ns := range []string{plain, guarded} {
			k := appliedKey(ns, "malformed", tc.spec)
			switch {
			case tc.spec == nil:
				k.Object["spec"] = "models: gpt-4o"
			case tc.spec["__list"] == true:
				k.Object["spec"] = []any{"gpt-4o"}
			}
			err := env.Client.Create(ctx, k, client.DryRunAll)
			msg := fmt.Sprint(err)
			where := "without guardrails"
			if ns == guarded {
				where = "with guardrails"
			}
			if err == nil {
				t.Errorf("%s, %s: accepted", tc.name, where)
				continue
			}
			for _, internal := range []string{"&{", "value.", "unstructured", "Unstructured", "0x"} {
				if strings.Contains(msg, internal) {
					t.Errorf("%s, %s: the message shows Go internals (%q): %s", tc.name, where, internal, msg)
				}
			}
			if !strings.Contains(msg, tc.field) {
				t.Errorf("%s, %s: the message does not name %s: %s", tc.name, where, tc.field, msg)
			}
		}
	}
}
