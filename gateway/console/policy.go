package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

// policyRequest is the body of POST /api/v1/apikeys/{name}/policy: the
// whole policy the key should have. A field that is absent, null or empty
// removes that part: no models means every model, no budget means none.
type policyRequest struct {
	Models             []string `json:"models"`
	RequestsPerMinute  *int64   `json:"requestsPerMinute"`
	TokensPerMinute    *int64   `json:"tokensPerMinute"`
	ConcurrentRequests *int64   `json:"concurrentRequests"`
	// Budget is written as people write it: "50usd/month", "5Mtokens/day"
	// (gatewayv1alpha1.ParseBudget).
	Budget string `json:"budget"`
}

const policyFields = "models, requestsPerMinute, tokensPerMinute, concurrentRequests, budget"

// modelGlob is the CRD's pattern for spec.models, checked here first so the
// admin reads which entry is wrong in words rather than as a regular
// expression.
var modelGlob = regexp.MustCompile(`^[A-Za-z0-9._:/@*?+-]{1,128}$`)

// spec validates the request and returns the models, limits and budget it
// asks for. The API server checks again, with the maxima of the CRD and of
// the namespace's guardrails, which only it knows.
func (req policyRequest) spec() (models []string, limits *gatewayv1alpha1.Limits, budget *gatewayv1alpha1.Budget, aerr *apiError) {
	for _, m := range req.Models {
		m = strings.TrimSpace(m)
		if m == "" || slices.Contains(models, m) {
			continue
		}
		if !modelGlob.MatchString(m) {
			return nil, nil, nil, &apiError{http.StatusBadRequest, "invalid_models", fmt.Sprintf(
				"%q is not a model name or pattern: use letters, digits and . _ : / @ + -, with * and ? as wildcards (for example gpt-4o* or claude-sonnet-*), up to 128 characters.", m)}
		}
		models = append(models, m)
	}
	for _, f := range []struct {
		name  string
		value *int64
	}{{"Requests per minute", req.RequestsPerMinute}, {"Tokens per minute", req.TokensPerMinute}, {"Concurrent requests", req.ConcurrentRequests}} {
		if f.value != nil && *f.value < 1 {
			return nil, nil, nil, &apiError{http.StatusBadRequest, "invalid_limits", fmt.Sprintf(
				"%s must be at least 1. Leave it empty for no limit.", f.name)}
		}
	}
	if req.RequestsPerMinute != nil || req.TokensPerMinute != nil || req.ConcurrentRequests != nil {
		limits = &gatewayv1alpha1.Limits{RequestsPerMinute: req.RequestsPerMinute, TokensPerMinute: req.TokensPerMinute}
		if c := req.ConcurrentRequests; c != nil {
			if *c > 1<<31-1 {
				return nil, nil, nil, &apiError{http.StatusBadRequest, "invalid_limits", "Concurrent requests is far too large: the gateway allows at most 100,000."}
			}
			n := int32(*c)
			limits.ConcurrentRequests = &n
		}
	}
	if text := strings.TrimSpace(req.Budget); text != "" {
		b, err := gatewayv1alpha1.ParseBudget(text)
		if err != nil {
			return nil, nil, nil, &apiError{http.StatusBadRequest, "invalid_budget", fmt.Sprintf(
				"The budget could not be read: %v. Leave it empty for no budget.", strings.TrimPrefix(err.Error(), "budget "))}
		}
		budget = b
	}
	return models, limits, budget, nil
}

// setPolicy replaces the models, limits and budget of a key in the console
// namespace, for an admin. Owners may not change their own key's policy
// (the admission policy refuses them; the console lets the gateway's
// service account through because it checks admin-ness here). Like
// revokeKey, it reaches only the console namespace: RBAC lets the gateway
// patch APIKeys nowhere else, so keys made with kubectl elsewhere are
// changed with kubectl.
func (c *Console) setPolicy(ctx context.Context, id *Identity, name string, req policyRequest) (keyItem, *apiError) {
	if !id.Admin {
		return keyItem{}, &apiError{http.StatusForbidden, "admin_required", fmt.Sprintf(
			"Only administrators (members of %s) can change a key's models, limits and budget.", c.opts.AdminGroup)}
	}
	notFound := &apiError{http.StatusNotFound, "not_found", fmt.Sprintf(
		"There is no API key named %q in namespace %s, the only one where the console can change keys.", name, c.opts.Namespace)}
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return keyItem{}, notFound
	}
	k := c.keys.APIKey(types.NamespacedName{Namespace: c.opts.Namespace, Name: name})
	if k == nil {
		return keyItem{}, notFound
	}
	models, limits, budget, aerr := req.spec()
	if aerr != nil {
		return keyItem{}, aerr
	}
	obj := objectOf(k)
	if err := c.writer.Patch(ctx, obj, policyPatch(k.UID, models, limits, budget)); err != nil {
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return keyItem{}, notFound
		}
		return keyItem{}, c.policyError(k, err)
	}
	c.log.Info("Changed the policy of API key in the console", "apikey", k.Name.String(), "prefix", k.Prefix, "owner", k.Owner, "by", id.User,
		"models", models, "limits", limits, "budget", budget.Summary())

	// As revokeKey does: wait until the index has the change, so the
	// page's next list shows it.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if cur, err := c.waitFor(waitCtx, k.Name, k.UID, func(f *keyindex.APIKeyFacts) (bool, error) { return samePolicy(f.Policy, &obj.Spec), nil }); err == nil {
		k = cur
	}
	return itemOf(k, c.now()), nil
}

// policyPatch sets spec.models, spec.limits and spec.budget of exactly the
// incarnation uid (a precondition, as in revokePatch). It is a merge patch,
// so every field the new policy lacks is written as null, inside limits
// and budget too: {"limits": {"requestsPerMinute": 600}} alone would keep
// an old tokensPerMinute.
func policyPatch(uid types.UID, models []string, limits *gatewayv1alpha1.Limits, budget *gatewayv1alpha1.Budget) client.Patch {
	spec := map[string]any{"models": nil, "limits": nil, "budget": nil}
	if len(models) > 0 {
		spec["models"] = models
	}
	if limits != nil {
		spec["limits"] = map[string]any{
			"requestsPerMinute":  limits.RequestsPerMinute,
			"tokensPerMinute":    limits.TokensPerMinute,
			"concurrentRequests": limits.ConcurrentRequests,
		}
	}
	if budget != nil {
		b := map[string]any{"tokens": budget.Tokens, "usd": nil, "period": budget.Period}
		if budget.USD != "" {
			b["usd"] = budget.USD
		}
		spec["budget"] = b
	}
	// Marshalling maps of strings, numbers and nil cannot fail.
	body, _ := json.Marshal(map[string]any{"metadata": map[string]any{"uid": uid}, "spec": spec})
	return client.RawPatch(types.MergePatchType, body)
}

// samePolicy tells whether the index's policy p is what spec asks for.
func samePolicy(p *keyindex.Policy, spec *gatewayv1alpha1.APIKeySpec) bool {
	if p == nil {
		return !spec.HasPolicy()
	}
	models := make([]string, 0, len(spec.Models))
	for _, m := range spec.Models {
		models = append(models, string(m))
	}
	return slices.Equal(p.Models, models) &&
		equality.Semantic.DeepEqual(p.Limits, spec.Limits) &&
		equality.Semantic.DeepEqual(p.Budget, spec.Budget)
}

// policyError explains a refused policy change. The API server checks the
// CRD's rules (maxima, one of tokens or usd) and the namespace's guardrails
// (admission policies); both answers are meant for the admin to read.
func (c *Console) policyError(k *keyindex.APIKeyFacts, err error) *apiError {
	msg := apiMessage(err)
	switch {
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		// `APIKey.gateway.codevector.io "x" is invalid: spec.limits...: ...`
		if _, detail, ok := strings.Cut(msg, " is invalid: "); ok {
			msg = detail
		}
		return &apiError{http.StatusBadRequest, "invalid_policy", "The limits could not be saved: " + msg}
	case apierrors.IsForbidden(err) && strings.Contains(msg, "denied request: "):
		// An admission policy's refusal: `... ValidatingAdmissionPolicy
		// 'apikey-guardrails...' with binding '...' denied request: <why>`.
		_, why, _ := strings.Cut(msg, "denied request: ")
		return &apiError{http.StatusBadRequest, "refused_by_policy", "The limits could not be saved: " + strings.TrimSuffix(why, ".") + "."}
	case apierrors.IsForbidden(err):
		c.log.Error("API server refused a console policy change; check the gateway's RBAC and the admission policies", "apikey", k.Name.String(), "error", err)
		return &apiError{http.StatusInternalServerError, "gateway_forbidden", fmt.Sprintf(
			"The limits could not be saved: the gateway is not allowed to change keys in namespace %q (%s). Ask your administrator to check the gateway's permissions.", k.Name.Namespace, msg)}
	default:
		c.log.Error("Failed to change the policy of an API key", "apikey", k.Name.String(), "error", err)
		return &apiError{http.StatusBadGateway, "apiserver_error", "The limits could not be saved: the Kubernetes API server did not accept the change. Try again in a moment."}
	}
}
