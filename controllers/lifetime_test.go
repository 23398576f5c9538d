package controllers_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
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
		if err := updateAsRead(ctx, got); err != nil {
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

// Issue 25, item 3: spec.expiresAt takes what kubectl apikey create
// --expires takes: a date (the start of that day, UTC) or an RFC 3339
// time, applied with the real kubectl as YAML is written (an unquoted
// date too); anything else is refused by the CRD's own rule with a
// message that shows a correct one and no Go internals, with or without
// guardrails, which compare a date with their maximum lifetime.
func TestExpiresAtTakesTheCLIsDates(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	ctx := context.Background()
	kc := env.KubeconfigFor(t, "expiry-admin", "system:masters")
	public := newKey(ns, "").Spec.RevealPublicKey

	day := time.Now().UTC().AddDate(0, 0, 40).Truncate(24 * time.Hour)
	date := day.Format(time.DateOnly)
	for _, tc := range []struct {
		name, yaml string
		want       time.Time
	}{
		{"date", date, day},
		{"rfc3339", `"` + date + `T09:00:00+02:00"`, day.Add(7 * time.Hour)},
	} {
		manifest := filepath.Join(t.TempDir(), "key.yaml")
		doc := fmt.Sprintf("apiVersion: gateway.codevector.io/v1alpha1\nkind: APIKey\nmetadata:\n  name: %s\nspec:\n  expiresAt: %s\n  revealPublicKey: %s\n", tc.name, tc.yaml, public)
		if err := os.WriteFile(manifest, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		kubectl(t, kc, "apply", "-n", ns, "-f", manifest)
		got := env.WaitForPhase(t, ns, tc.name, gatewayv1alpha1.PhaseActive, 15*time.Second)
		if got.Status.ExpiresAt == nil || !got.Status.ExpiresAt.Time.Equal(tc.want) {
			t.Errorf("expiresAt: %s: status.expiresAt %v, want %v", tc.yaml, got.Status.ExpiresAt, tc.want)
		}
		if want := strings.Trim(tc.yaml, `"`); got.Spec.ExpiresAt.String() != want {
			t.Errorf("expiresAt: %s reads back as %q, want it as written", tc.yaml, got.Spec.ExpiresAt)
		}
		// An update of the key as read keeps expiresAt as written (the
		// immutability rule compares the text), and kubectl's own
		// read-modify-write does too.
		if err := updateAsRead(ctx, got); err != nil {
			t.Errorf("expiresAt: %s: updating the key as read: %v", tc.yaml, err)
		}
		kubectl(t, kc, "label", "apikey", tc.name, "-n", ns, "team=a")
	}

	guarded := env.Namespace(t)
	env.BindGuardrails(t, guarded, map[string]string{"defaultTTL": "30d", "maxLifetime": "90d", "defaultRequestsPerMinute": "60", "maxRequestsPerMinute": "600", "defaultBudgetUSD": "20", "maxBudgetUSD": "200"})
	waitForGuardrails(t, guarded)
	goInternals := []string{"&{", "value.", "nstructured", "0x", "<nil>", "int64", "%!", "*v1", "time.Parse", "parsing time"}
	for _, bad := range []string{
		"2027-13-01", "2027-02-30", "31/01/2027", "2027-1-31", "2027-01-31T09:00", "2027-01-31T09:00:00",
		"2027-01-31 09:00:00", "2027-01-31T25:00:00Z", "tomorrow", "30d", "", date + " ",
	} {
		for _, in := range []string{ns, guarded} {
			err := env.Client.Create(ctx, appliedKey(in, "bad-expiry", map[string]any{"expiresAt": bad}), client.DryRunAll)
			msg := fmt.Sprint(err)
			if err == nil || !strings.Contains(msg, "spec.expiresAt") || !strings.Contains(msg, "such as 2027-01-31 (the start of that day, UTC) or an RFC 3339 time such as 2027-01-31T09:00:00Z") {
				t.Errorf("expiresAt: %q in %s: %v, want a refusal naming spec.expiresAt with examples", bad, in, err)
			}
			for _, internal := range goInternals {
				if strings.Contains(msg, internal) {
					t.Errorf("expiresAt: %q: the message shows Go internals (%q): %s", bad, internal, msg)
				}
			}
		}
	}

	// Guardrails read a date as the CLI does: the start of that day, UTC.
	within := time.Now().UTC().AddDate(0, 0, 60).Format(time.DateOnly)
	if err := env.Client.Create(ctx, appliedKey(guarded, "within", map[string]any{"expiresAt": within}), client.DryRunAll); err != nil {
		t.Errorf("expiresAt %s within maxLifetime 90d: %v", within, err)
	}
	over := time.Now().UTC().AddDate(0, 0, 120).Format(time.DateOnly)
	if err := env.Client.Create(ctx, appliedKey(guarded, "over", map[string]any{"expiresAt": over}), client.DryRunAll); err == nil || !strings.Contains(err.Error(), "the key must expire within 90d") {
		t.Errorf("expiresAt %s past maxLifetime 90d: %v", over, err)
	}
}

// updateAsRead changes the display name of the APIKey read as got, reading
// it again on a conflict (the controller may still be writing status), as
// kubectl edit would: an update must keep what the spec says as written.
func updateAsRead(ctx context.Context, got *gatewayv1alpha1.APIKey) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		fresh := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(got), fresh); err != nil {
			return err
		}
		fresh.Spec.DisplayName = "updated"
		return env.Client.Update(ctx, fresh)
	})
}
