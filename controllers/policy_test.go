package controllers_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// The API server itself refuses malformed policy (docs/design.md, section 12.1),
// so no client can store a key the gateways would have to guess about.
func TestPolicyFieldsAreValidatedByTheAPIServer(t *testing.T) {
	ns := env.Namespace(t)
	for _, tc := range []struct {
		name   string
		mutate func(*gatewayv1alpha1.APIKey)
		want   string
	}{
		{"both budget units", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "5", Tokens: ptr.To[int64](5)}
		}, "set exactly one of tokens or usd"},
		{"no budget unit", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{Period: gatewayv1alpha1.BudgetDay}
		}, "set exactly one of tokens or usd"},
		{"zero dollars", func(k *gatewayv1alpha1.APIKey) { k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "0.0"} }, "usd must be more than 0"},
		{"dollars with a sign", func(k *gatewayv1alpha1.APIKey) { k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "$5"} }, "spec.budget.usd"},
		{"unknown period", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "5", Period: "fortnight"}
		}, "spec.budget.period"},
		{"zero requests per minute", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](0)}
		}, "spec.limits.requestsPerMinute"},
		{"negative tokens per minute", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{TokensPerMinute: ptr.To[int64](-1)}
		}, "spec.limits.tokensPerMinute"},
		{"empty limits", func(k *gatewayv1alpha1.APIKey) { k.Spec.Limits = &gatewayv1alpha1.Limits{} }, "set at least one of"},
		{"bracket glob", func(k *gatewayv1alpha1.APIKey) { k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-[4"} }, "spec.models[0]"},
		{"empty model", func(k *gatewayv1alpha1.APIKey) { k.Spec.Models = []gatewayv1alpha1.ModelGlob{""} }, "spec.models[0]"},
	} {
		err := env.Client.Create(context.Background(), newKey(ns, "bad-"+strings.ReplaceAll(tc.name, " ", "-"), tc.mutate))
		if err == nil || !isInvalid(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an Invalid error mentioning %q", tc.name, err, tc.want)
		}
	}

	good := create(t, newKey(ns, "good", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-4o*", "claude-sonnet-?-5", "meta-llama/Llama-3.1-8B"}
		k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](600), ConcurrentRequests: ptr.To[int32](4)}
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "12.50"}
	}))
	if got := good.Spec.Budget.Period; got != gatewayv1alpha1.BudgetMonth {
		t.Errorf("budget period defaulted to %q, want month", got)
	}
}

// An owner may not lift the limits an admin put on their key; an admin
// may change them, and the owner may still revoke.
func TestOnlyAdminsChangeAKeysPolicy(t *testing.T) {
	ctx := context.Background()
	ns, alice, carol := teamNamespace(t)

	k := newKey(ns, "limited", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Owner = "alice@example.com"
		k.Spec.RevealPublicKey = ""
		k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](10)}
		k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-4o-mini"}
	})
	if err := carol.Create(ctx, k); err != nil {
		t.Fatal(err)
	}
	for name, mutate := range map[string]func(*gatewayv1alpha1.APIKey){
		"raise her rate":   func(k *gatewayv1alpha1.APIKey) { k.Spec.Limits.RequestsPerMinute = ptr.To[int64](10_000) },
		"drop her limits":  func(k *gatewayv1alpha1.APIKey) { k.Spec.Limits = nil },
		"widen her models": func(k *gatewayv1alpha1.APIKey) { k.Spec.Models = append(k.Spec.Models, "*") },
		"give a budget":    func(k *gatewayv1alpha1.APIKey) { k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "1000000"} },
	} {
		mine := k.DeepCopy()
		base := mine.DeepCopy()
		mutate(mine)
		err := alice.Patch(ctx, mine, client.MergeFrom(base))
		if err == nil || !strings.Contains(err.Error(), "only members of "+gatewayv1alpha1.DefaultAdminGroup+" can change the models, limits or budget") {
			t.Errorf("alice trying to %s: got %v, want the admin-only refusal", name, err)
		}
	}

	byAdmin := k.DeepCopy()
	base := byAdmin.DeepCopy()
	byAdmin.Spec.Limits.RequestsPerMinute = ptr.To[int64](100)
	if err := carol.Patch(ctx, byAdmin, client.MergeFrom(base)); err != nil {
		t.Fatalf("admin raising the rate: %v", err)
	}
	revoke := byAdmin.DeepCopy()
	base = revoke.DeepCopy()
	revoke.Spec.Revoked = true
	if err := alice.Patch(ctx, revoke, client.MergeFrom(base)); err != nil {
		t.Errorf("alice revoking her limited key: %v", err)
	}
}

// kubectl get apikeys -o wide shows the budget; the controller keeps the
// column in step with spec.budget.
func TestKubectlShowsTheBudget(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	k := create(t, newKey(ns, "budgeted", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "50"}
	}))
	env.WaitForPhase(t, ns, k.Name, gatewayv1alpha1.PhaseActive, 10*time.Second)
	kc := env.KubeconfigFor(t, "kubectl-admin", "system:masters")
	testenv.Eventually(t, 10*time.Second, func() error {
		out := kubectl(t, kc, "get", "apikeys", "-n", ns, "-o", "wide")
		if !strings.Contains(out, "BUDGET") || !strings.Contains(out, "$50/month") || !strings.Contains(out, "USAGE") {
			return fmt.Errorf("kubectl get apikeys -o wide:\n%s", out)
		}
		return nil
	})
	if err := patchSpec(t, k, func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{Tokens: ptr.To[int64](5_000_000), Period: gatewayv1alpha1.BudgetDay}
	}); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if got := get(t, ns, k.Name).Status.Budget; got != "5M tokens/day" {
			return fmt.Errorf("status.budget = %q, want 5M tokens/day", got)
		}
		return nil
	})
}

// Guardrails apply on every creation path, because admission is the one
// door: a typed client (as the CLI and the console use), and kubectl apply
// of a manifest (as GitOps tools do).
func TestNamespaceGuardrails(t *testing.T) {
	ctx := context.Background()
	ns, alice, _ := teamNamespace(t)

	// A key from before the guardrails, with no expiry and no limits.
	old := newKey(ns, "from-before", func(k *gatewayv1alpha1.APIKey) { k.Spec.RevealPublicKey = "" })
	if err := alice.Create(ctx, old); err != nil {
		t.Fatal(err)
	}

	// A cluster admin applies config/samples/guardrails.yaml for the
	// namespace: the ConfigMap in the system namespace, and the bindings.
	g := env.BindGuardrails(t, ns, nil)
	configMap := "ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap
	// The API server picks up new bindings and params within a moment.
	defaulted := waitForGuardrails(t, ns)

	// Defaults, from config/samples/guardrails.yaml.
	wantModels := []gatewayv1alpha1.ModelGlob{"gpt-4o-mini*", "claude-haiku-*"}
	if got := defaulted.Spec.Models; len(got) != 2 || got[0] != wantModels[0] || got[1] != wantModels[1] {
		t.Errorf("models defaulted to %v, want %v", got, wantModels)
	}
	if l := defaulted.Spec.Limits; l == nil || ptr.Deref(l.RequestsPerMinute, 0) != 60 || ptr.Deref(l.TokensPerMinute, 0) != 100_000 || ptr.Deref(l.ConcurrentRequests, 0) != 20 {
		t.Errorf("limits defaulted to %+v, want 60 rpm, 100000 tpm, 20 concurrent", defaulted.Spec.Limits)
	}
	if b := defaulted.Spec.Budget; b.USD != "20" || b.Period != gatewayv1alpha1.BudgetMonth {
		t.Errorf("budget defaulted to %+v, want $20/month", b)
	}
	if defaulted.Spec.TTL == nil || defaulted.Spec.TTL.Duration != 720*time.Hour {
		t.Errorf("ttl defaulted to %v, want 720h", defaulted.Spec.TTL)
	}

	// Maxima, each with a message that says which rule and where it is set.
	for _, tc := range []struct {
		name   string
		mutate func(*gatewayv1alpha1.APIKey)
		want   string
	}{
		{"a model outside the allowed ones", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-4o", "o3-pro"}
		}, "spec.models must name only models within gpt-4o*,gpt-4.1*,claude-sonnet-*,claude-haiku-*"},
		{"a glob wider than the allowed ones", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-*"}
		}, "spec.models must name only models within"},
		{"a glob reaching past a slash", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Models = []gatewayv1alpha1.ModelGlob{"claude-haiku-x/../secret"}
		}, "spec.models must name only models within"},
		{"too many requests", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](601)}
		}, "spec.limits.requestsPerMinute must be at most 600"},
		{"too many tokens", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Limits = &gatewayv1alpha1.Limits{TokensPerMinute: ptr.To[int64](1_000_001)}
		}, "spec.limits.tokensPerMinute must be at most 1000000"},
		{"too much money", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "200.01"}
		}, "spec.budget must be at most 200 usd per month"},
		{"a budget in another period", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "10", Period: gatewayv1alpha1.BudgetTotal}
		}, "spec.budget must be at most 200 usd per month"},
		{"a budget in tokens", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Budget = &gatewayv1alpha1.Budget{Tokens: ptr.To[int64](1)}
		}, "spec.budget must be at most 200 usd per month"},
		{"a ttl too long", func(k *gatewayv1alpha1.APIKey) {
			k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: 2161 * time.Hour}
		}, "the key must expire within 2160h"},
		{"an expiry too late", func(k *gatewayv1alpha1.APIKey) {
			at := metav1.NewTime(time.Now().Add(100 * 24 * time.Hour))
			k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(at.Time)
		}, "the key must expire within 2160h"},
	} {
		k := newKey(ns, "", func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "over-"; k.Spec.RevealPublicKey = "" }, tc.mutate)
		err := alice.Create(ctx, k, client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "as set by the guardrails of namespace "+ns+" ("+configMap+")") {
			t.Errorf("%s: got %v, want a refusal saying %q and naming the ConfigMap", tc.name, err, tc.want)
		}
	}
	within := newKey(ns, "within", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.RevealPublicKey = ""
		k.Spec.Models = []gatewayv1alpha1.ModelGlob{"gpt-4o", "claude-sonnet-4-5", "gpt-4.1-mini*"}
		k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](600)}
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "199.99"}
		at := metav1.NewTime(time.Now().Add(80 * 24 * time.Hour))
		k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(at.Time)
	})
	if err := alice.Create(ctx, within); err != nil {
		t.Errorf("a key within every maximum: %v", err)
	}

	// GitOps: kubectl apply of a bare manifest gets the same defaults.
	kc := env.KubeconfigFor(t, "gitops-bot", gatewayv1alpha1.DefaultAdminGroup, "system:masters")
	manifest := filepath.Join(t.TempDir(), "key.yaml")
	if err := os.WriteFile(manifest, []byte("apiVersion: gateway.codevector.io/v1alpha1\nkind: APIKey\nmetadata:\n  name: from-git\nspec:\n  owner: alice@example.com\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, kc, "apply", "-n", ns, "-f", manifest)
	if g := get(t, ns, "from-git"); g.Spec.Budget == nil || g.Spec.Budget.USD != "20" || g.Spec.TTL == nil || len(g.Spec.Models) != 2 {
		t.Errorf("kubectl apply: spec = %+v, want the guardrail defaults", g.Spec)
	}
	greedy := exec.Command("kubectl", "--kubeconfig", kc, "apply", "-n", ns, "-f", "-")
	greedy.Stdin = strings.NewReader("apiVersion: gateway.codevector.io/v1alpha1\nkind: APIKey\nmetadata:\n  name: greedy\nspec:\n  owner: alice@example.com\n  limits: {requestsPerMinute: 100000}\n")
	if out, err := greedy.CombinedOutput(); err == nil || !strings.Contains(string(out), "spec.limits.requestsPerMinute must be at most 600") {
		t.Errorf("kubectl apply over the maximum: err %v, output:\n%s", err, out)
	}

	// The key from before still works as it was and can be revoked.
	base := old.DeepCopy()
	old.Spec.Revoked = true
	if err := alice.Patch(ctx, old, client.MergeFrom(base)); err != nil {
		t.Errorf("revoking a key created before the guardrails: %v", err)
	}

	// A platform admin deletes the ConfigMap while the namespace is still
	// bound: new keys are refused, saying why and who can fix it, instead
	// of being created without guardrails.
	if err := env.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: g.ConfigMap}}); err != nil {
		t.Fatal(err)
	}
	var refusal error
	testenv.Eventually(t, 10*time.Second, func() error {
		k := newKey(ns, "", func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "unguarded-"; k.Spec.RevealPublicKey = "" })
		if refusal = alice.Create(ctx, k, client.DryRunAll); refusal == nil {
			return fmt.Errorf("a key was created with spec %+v after the guardrails' ConfigMap was deleted", k.Spec)
		}
		return nil
	})
	if msg, ok := gatewayv1alpha1.ExplainMissingGuardrails(refusal.Error(), ns); !ok ||
		!strings.Contains(refusal.Error(), "with binding 'apikey-guardrails."+ns+"'") ||
		!strings.Contains(msg, "new keys in namespace "+ns+" are refused") || !strings.Contains(msg, "Only a cluster admin can fix this") {
		t.Errorf("refusal without the ConfigMap: %v (explained: %q), want the binding named and the refusal explained", refusal, msg)
	}
	// Keys of the namespace can still be revoked, and deleted.
	within.Spec.Revoked = true
	if err := alice.Update(ctx, within); err != nil {
		t.Errorf("revoking a key while the guardrails' ConfigMap is missing: %v", err)
	}
	if err := alice.Delete(ctx, within); err != nil {
		t.Errorf("deleting a key while the guardrails' ConfigMap is missing: %v", err)
	}

	// A cluster admin deleting the bindings lifts the guardrails.
	for _, o := range g.Objects {
		if o.GetKind() == "ConfigMap" {
			continue
		}
		if err := env.Client.Delete(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		k := newKey(ns, "", func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "free-"; k.Spec.RevealPublicKey = "" })
		if err := alice.Create(ctx, k, client.DryRunAll); err != nil {
			return err
		}
		if k.Spec.Budget != nil || k.Spec.TTL != nil {
			return fmt.Errorf("still defaulted after the bindings were deleted: %+v", k.Spec)
		}
		return nil
	})
}
