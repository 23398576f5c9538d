package controllers_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// Issue 23, item 5: a user with the built-in edit role in a namespace
// deleted its guardrails ConfigMap and created a key with every model,
// 100,000 rpm, no budget and no expiry. Guardrails are the platform's now:
// nobody bound in the namespace alone, with edit or with admin, can remove
// or loosen them, whatever they do with the ConfigMaps they can write.
func TestNamespaceEditorsCannotRemoveGuardrails(t *testing.T) {
	ctx := context.Background()
	aggregateBuiltinRoles(t)
	ns := env.Namespace(t)
	g := env.BindGuardrails(t, ns, nil)
	system := gatewayv1alpha1.DefaultSystemNamespace
	waitForGuardrails(t, ns)
	barrier := paramsBarrier(t)

	greedy := func(name string) *gatewayv1alpha1.APIKey {
		return newKey(ns, name, unsealed, func(k *gatewayv1alpha1.APIKey) {
			k.Spec.Models = []gatewayv1alpha1.ModelGlob{"*"}
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](100_000)}
		})
	}

	for _, role := range []string{"edit", "admin"} {
		t.Run(role, func(t *testing.T) {
			user := role + "-user@example.com"
			c := roleClient(t, ns, user, role)

			// What the role does allow: ConfigMaps in the namespace. Delete
			// every one (the namespace's own guardrails, before they moved),
			// then write loose ones, shaped as the old guardrails were and
			// named as the bound one is.
			// RBAC's cache sees the binding (and the aggregated role) a moment
			// later.
			var existing corev1.ConfigMapList
			testenv.Eventually(t, 10*time.Second, func() error {
				if err := c.List(ctx, &existing, client.InNamespace(ns)); err != nil {
					return fmt.Errorf("%s listing ConfigMaps in %s: %w", role, ns, err)
				}
				return nil
			})
			for i := range existing.Items {
				if err := c.Delete(ctx, &existing.Items[i]); err != nil && !apierrors.IsNotFound(err) {
					t.Errorf("%s deleting ConfigMap %s/%s: %v", role, ns, existing.Items[i].Name, err)
				}
			}
			loose := map[string]string{"allowedModels": "*", "maxRequestsPerMinute": "100000", "requireExpiry": "false", "defaultBudgetUSD": "1000000"}
			names := []string{"codevector-guardrails"}
			if g.ConfigMap != names[0] {
				names = append(names, g.ConfigMap)
			}
			for _, name := range names {
				cm := &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"gateway.codevector.io/guardrails": "true"}},
					Data:       loose,
				}
				if err := c.Create(ctx, cm); err != nil {
					t.Fatalf("%s creating ConfigMap %s/%s: %v (the role should allow it, else this test proves nothing)", role, ns, cm.Name, err)
				}
			}
			// Admission reads params from the API server's cache: wait until
			// it has seen these writes, so a refusal below is not just a
			// cache that lags behind.
			barrier()

			// What it does not: the guardrails themselves, their bindings,
			// the policies, the namespace's labels, or a way around RBAC.
			cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: system, Name: g.ConfigMap}}
			forbidden(t, role+" reading the guardrails", c.Get(ctx, client.ObjectKeyFromObject(cm), &corev1.ConfigMap{}))
			forbidden(t, role+" deleting the guardrails", c.Delete(ctx, cm))
			forbidden(t, role+" loosening the guardrails", c.Patch(ctx, cm, client.RawPatch(types.MergePatchType, []byte(`{"data":{"maxRequestsPerMinute":"100000"}}`))))
			forbidden(t, role+" creating guardrails in the system namespace", c.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Namespace: system, Name: "loose-" + role}, Data: loose}))
			for _, o := range g.Objects {
				if o.GetKind() == "ConfigMap" {
					continue
				}
				b := o.DeepCopy()
				forbidden(t, role+" deleting "+o.GetKind()+" "+o.GetName(), c.Delete(ctx, b))
				forbidden(t, role+" repointing "+o.GetKind()+" "+o.GetName(), c.Patch(ctx, b,
					client.RawPatch(types.MergePatchType, []byte(`{"spec":{"paramRef":{"namespace":"`+ns+`"}}}`))))
			}
			forbidden(t, role+" binding the guardrails to a ConfigMap of the namespace", c.Create(ctx, &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "loose-" + role + "." + ns},
				Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
					PolicyName:        gatewayv1alpha1.GuardrailsPolicy,
					ParamRef:          &admissionregistrationv1.ParamRef{Name: "codevector-guardrails", ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)},
					ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
				},
			}))
			forbidden(t, role+" deleting the guardrails policy", c.Delete(ctx, &admissionregistrationv1.ValidatingAdmissionPolicy{ObjectMeta: metav1.ObjectMeta{Name: gatewayv1alpha1.GuardrailsPolicy}}))
			forbidden(t, role+" relabelling the namespace", c.Patch(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}},
				client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"labels":{"kubernetes.io/metadata.name":"elsewhere"}}}`))))
			forbidden(t, role+" granting themselves cluster-admin in the namespace", c.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "escalate-" + role},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
			}))

			// And a key beyond the maxima is refused.
			err := c.Create(ctx, greedy("greedy-"+role))
			if err == nil || !strings.Contains(err.Error(), "spec.models must name only models within") {
				t.Errorf("%s creating a key with every model and 100,000 rpm: got %v, want the guardrails' refusal", role, err)
			}
			err = c.Create(ctx, newKey(ns, "fast-"+role, unsealed, func(k *gatewayv1alpha1.APIKey) {
				k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](100_000)}
			}))
			if err == nil || !strings.Contains(err.Error(), "spec.limits.requestsPerMinute must be at most 600, as set by the guardrails of namespace "+ns+" (ConfigMap "+system+"/"+g.ConfigMap+")") {
				t.Errorf("%s creating a key with 100,000 rpm: got %v, want the guardrails' refusal", role, err)
			}
			// A key they create without asking gets the defaults, budget and
			// expiry included, not the loose ConfigMaps' settings.
			k := newKey(ns, "", unsealed, func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "plain-" })
			if err := c.Create(ctx, k, client.DryRunAll); err != nil {
				t.Errorf("%s creating a plain key: %v", role, err)
			} else if k.Spec.Budget == nil || k.Spec.Budget.USD != "20" || k.Spec.TTL == nil || k.Spec.Limits == nil || ptr.Deref(k.Spec.Limits.RequestsPerMinute, 0) != 60 {
				t.Errorf("%s's plain key: spec %+v, want the guardrails' defaults", role, k.Spec)
			}
		})
	}
}

// A binding that reads its params from the key's own namespace (one left
// from before the guardrails moved, or one written without
// paramRef.namespace) does not make a ConfigMap that the namespace's users
// write into guardrails: new keys are refused, saying what is wrong, and
// existing keys can still be revoked.
func TestGuardrailsFromTheKeysNamespaceAreRefused(t *testing.T) {
	ctx := context.Background()
	ns, alice, _ := teamNamespace(t)
	old := newKey(ns, "from-before", unsealed)
	if err := alice.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "codevector-guardrails"},
		Data:       map[string]string{"allowedModels": "*", "maxRequestsPerMinute": "100000"},
	}); err != nil {
		t.Fatal(err)
	}
	sel := metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: corev1.LabelMetadataName, Operator: metav1.LabelSelectorOpIn, Values: []string{ns}}}}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "apikey-guardrails-local." + ns},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        gatewayv1alpha1.GuardrailsPolicy,
			MatchResources:    &admissionregistrationv1.MatchResources{NamespaceSelector: &sel},
			ParamRef:          &admissionregistrationv1.ParamRef{Name: "codevector-guardrails", ParameterNotFoundAction: ptr.To(admissionregistrationv1.AllowAction)},
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
		},
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), binding) })

	want := "ConfigMap " + ns + "/codevector-guardrails is not guardrails: guardrails are a ConfigMap in namespace " + gatewayv1alpha1.DefaultSystemNamespace
	testenv.Eventually(t, 10*time.Second, func() error {
		err := alice.Create(ctx, newKey(ns, "", unsealed, func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "probe-" }), client.DryRunAll)
		if err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("got %v, want a refusal saying %q", err, want)
		}
		return nil
	})
	base := old.DeepCopy()
	old.Spec.Revoked = true
	if err := alice.Patch(ctx, old, client.MergeFrom(base)); err != nil {
		t.Errorf("revoking a key under a misdirected binding: %v", err)
	}
}

// waitForGuardrails waits until the sample's guardrails are in force in
// ns, both the defaults and the maxima (the mutating and the validating
// policies see new bindings each on their own), and returns a key the
// defaults filled in.
func waitForGuardrails(t *testing.T, ns string) (defaulted *gatewayv1alpha1.APIKey) {
	t.Helper()
	ctx := context.Background()
	testenv.Eventually(t, 10*time.Second, func() error {
		k := newKey(ns, "", unsealed, func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "probe-" })
		if err := env.Client.Create(ctx, k, client.DryRunAll); err != nil {
			return err
		}
		if k.Spec.Budget == nil {
			return fmt.Errorf("guardrail defaults not in force yet")
		}
		over := newKey(ns, "", unsealed, func(k *gatewayv1alpha1.APIKey) {
			k.GenerateName = "probe-"
			k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: ptr.To[int64](100_000)}
		})
		if err := env.Client.Create(ctx, over, client.DryRunAll); err == nil || !strings.Contains(err.Error(), "spec.limits.requestsPerMinute must be at most") {
			return fmt.Errorf("guardrail maxima not in force yet (%v)", err)
		}
		defaulted = k
		return nil
	})
	return defaulted
}

// paramsBarrier returns a function that waits until the API server's
// admission has seen every ConfigMap written before the call. Admission
// reads params from a watch of all ConfigMaps, so once it sees a change
// made after those writes, it has seen them too: the function raises the
// default and the maximum budget of another namespace's guardrails and
// waits until new keys there get the new default and may have the new
// maximum.
func paramsBarrier(t *testing.T) func() {
	t.Helper()
	sentinel := env.Namespace(t)
	g := env.BindGuardrails(t, sentinel, map[string]string{"defaultBudgetUSD": "1", "maxBudgetUSD": "1"})
	var cm client.Object
	for _, o := range g.Objects {
		if o.GetKind() == "ConfigMap" {
			cm = o
		}
	}
	n := 1
	return func() {
		t.Helper()
		ctx := context.Background()
		n++
		usd := fmt.Sprint(n)
		if err := env.Client.Patch(ctx, cm.DeepCopyObject().(client.Object), client.RawPatch(types.MergePatchType,
			[]byte(`{"data":{"defaultBudgetUSD":"`+usd+`","maxBudgetUSD":"`+usd+`"}}`))); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			k := newKey(sentinel, "", unsealed, func(k *gatewayv1alpha1.APIKey) { k.GenerateName = "barrier-" })
			if err := env.Client.Create(ctx, k, client.DryRunAll); err != nil {
				return err
			}
			if k.Spec.Budget == nil || k.Spec.Budget.USD != usd {
				return fmt.Errorf("the defaults have not seen the barrier's change yet (budget %+v, want $%s)", k.Spec.Budget, usd)
			}
			at := newKey(sentinel, "", unsealed, func(k *gatewayv1alpha1.APIKey) {
				k.GenerateName = "barrier-"
				k.Spec.Budget = &gatewayv1alpha1.Budget{USD: usd}
			})
			if err := env.Client.Create(ctx, at, client.DryRunAll); err != nil {
				return fmt.Errorf("the maxima have not seen the barrier's change yet: %w", err)
			}
			return nil
		})
	}
}

// forbidden checks that err is the API server's 403.
func forbidden(t *testing.T, what string, err error) {
	t.Helper()
	if !apierrors.IsForbidden(err) {
		t.Errorf("%s: err = %v, want 403 Forbidden", what, err)
	}
}

// roleClient is a real user of the API server (a client certificate)
// bound to ClusterRole role in ns only, as a namespace's team is.
func roleClient(t *testing.T, ns, name, role string) client.Client {
	t.Helper()
	u, err := env.AddUser(envtest.User{Name: name}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role + "-" + strings.ReplaceAll(name, "@", "-at-")},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: name}},
	}
	if err := env.Client.Create(context.Background(), binding); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(u.Config(), client.Options{Scheme: manager.Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// aggregateBuiltinRoles gives the built-in view, edit and admin
// ClusterRoles the rules a real cluster gives them. The API server's RBAC
// bootstrap creates them with only an aggregationRule; kube-controller-
// manager's ClusterRole aggregation controller then fills in the rules of
// every ClusterRole the rule selects (system:aggregate-to-edit,
// codevector-apikey-editor, and view itself for edit, edit for admin). The
// test control plane runs no controller manager, so this does the same,
// in that order.
func aggregateBuiltinRoles(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	for _, name := range []string{"view", "edit", "admin"} {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			role := &rbacv1.ClusterRole{}
			if err := env.Client.Get(ctx, client.ObjectKey{Name: name}, role); err != nil {
				return err
			}
			if role.AggregationRule == nil || len(role.AggregationRule.ClusterRoleSelectors) == 0 {
				return fmt.Errorf("the built-in ClusterRole %s has no aggregationRule", name)
			}
			var rules []rbacv1.PolicyRule
			for _, s := range role.AggregationRule.ClusterRoleSelectors {
				sel, err := metav1.LabelSelectorAsSelector(&s)
				if err != nil {
					return err
				}
				var list rbacv1.ClusterRoleList
				if err := env.Client.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
					return err
				}
				sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
				for _, r := range list.Items {
					if r.Name == name {
						continue
					}
					for _, rule := range r.Rules {
						if !containsRule(rules, rule) {
							rules = append(rules, rule)
						}
					}
				}
			}
			if len(rules) == 0 {
				return fmt.Errorf("no ClusterRole aggregates into %s", name)
			}
			role.Rules = rules
			return env.Client.Update(ctx, role)
		})
		if err != nil {
			t.Fatalf("aggregating the built-in ClusterRole %s: %v", name, err)
		}
	}
}

func containsRule(rules []rbacv1.PolicyRule, r rbacv1.PolicyRule) bool {
	for _, have := range rules {
		if reflect.DeepEqual(have, r) {
			return true
		}
	}
	return false
}
