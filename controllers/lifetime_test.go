package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
)

// appliedKey is an APIKey as YAML applied with kubectl reaches the API
// server: spec as written, no Go type in between.
func appliedKey(ns, name string, spec map[string]any) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": gatewayv1alpha1.GroupVersion.String(), "kind": "APIKey",
		"metadata": map[string]any{"namespace": ns, "name": name},
		"spec":     spec,
	}}
	return u
}

// Issue 25, item 3: spec.ttl takes the lifetimes kubectl apikey create
// --expires takes (30d, 2w, 12h, 90m), the API server refuses anything
// else with a message that shows a correct one, the controller resolves
// the expiry from it, and guardrails compare it.
func TestTTLTakesTheCLIsLifetimes(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	ctx := context.Background()

	for _, tc := range []struct {
		ttl  string
		want time.Duration
	}{
		{"30d", 30 * 24 * time.Hour},
		{"2w", 14 * 24 * time.Hour},
		{"12h", 12 * time.Hour},
		{"90m", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"720h", 720 * time.Hour},
	} {
		name := "ttl-" + tc.ttl
		k := appliedKey(ns, name, map[string]any{"ttl": tc.ttl, "revealPublicKey": newKey(ns, "").Spec.RevealPublicKey})
		if err := env.Client.Create(ctx, k); err != nil {
			t.Errorf("ttl: %s refused: %v", tc.ttl, err)
			continue
		}
		// The controller reads it and resolves the expiry from it.
		got := env.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 15*time.Second)
		if got.Status.ExpiresAt == nil || !got.Status.ExpiresAt.Time.Equal(got.CreationTimestamp.Add(tc.want)) {
			t.Errorf("ttl: %s: status.expiresAt %v, want creation + %v (%v)", tc.ttl, got.Status.ExpiresAt, tc.want, got.CreationTimestamp.Add(tc.want))
		}
		// Stored and read back as written, so an update of what was read
		// keeps it (the immutability rule compares the text).
		if got.Spec.TTL.String() != tc.ttl {
			t.Errorf("ttl: %s reads back as %q", tc.ttl, got.Spec.TTL)
		}
		// The controller may still be writing status: update what was
		// read, again on a conflict, as kubectl edit would.
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			fresh := &gatewayv1alpha1.APIKey{}
			if err := env.Client.Get(ctx, client.ObjectKeyFromObject(got), fresh); err != nil {
				return err
			}
			fresh.Spec.DisplayName = "updated"
			return env.Client.Update(ctx, fresh)
		})
		if err != nil {
			t.Errorf("ttl: %s: updating the key as read: %v", tc.ttl, err)
		}
	}

	for _, bad := range []any{"30 days", "1y", "30D", "-5d", "5d12h", "d", "", "12345d", "30d ", int64(30)} {
		err := env.Client.Create(ctx, appliedKey(ns, "bad-ttl", map[string]any{"ttl": bad}), client.DryRunAll)
		msg := fmt.Sprint(err)
		if _, number := bad.(int64); number {
			if err == nil || !strings.Contains(msg, "spec.ttl") || !strings.Contains(msg, "string") {
				t.Errorf("ttl: 30 (a number): %v, want the API server's type error naming spec.ttl", err)
			}
			continue
		}
		if err == nil || !strings.Contains(msg, "spec.ttl") || !strings.Contains(msg, "such as 30d, 2w, 12h or 90m") || strings.Contains(msg, "should match") {
			t.Errorf("ttl: %q: %v, want a refusal naming spec.ttl with an example", bad, err)
		}
	}

	// Guardrails read days too, in spec.ttl and in their own settings.
	env.BindGuardrails(t, ns, map[string]string{"defaultTTL": "30d", "maxLifetime": "90d", "defaultRequestsPerMinute": "60", "maxRequestsPerMinute": "600", "defaultBudgetUSD": "20", "maxBudgetUSD": "200"})
	waitForGuardrails(t, ns)
	if err := env.Client.Create(ctx, appliedKey(ns, "within", map[string]any{"ttl": "12w"}), client.DryRunAll); err != nil {
		t.Errorf("ttl 12w within maxLifetime 90d: %v", err)
	}
	for _, over := range []string{"91d", "13w", "2161h"} {
		if err := env.Client.Create(ctx, appliedKey(ns, "over", map[string]any{"ttl": over}), client.DryRunAll); err == nil || !strings.Contains(err.Error(), "the key must expire within 90d") {
			t.Errorf("ttl %s past maxLifetime 90d: %v", over, err)
		}
	}
	defaulted := newKey(ns, "defaulted", unsealed)
	if err := env.Client.Create(ctx, defaulted, client.DryRunAll); err != nil || defaulted.Spec.TTL == nil || defaulted.Spec.TTL.String() != "30d" || defaulted.Spec.TTL.Duration != 720*time.Hour {
		t.Errorf("a key without expiry under defaultTTL 30d: %v, ttl %v", err, defaulted.Spec.TTL)
	}
}
