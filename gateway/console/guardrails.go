package console

import (
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// guardrails are the console namespace's guardrails (config/policies/
// guardrails.yaml) as the create dialog shows them next to its fields: the
// defaults a new key gets and the maxima it must stay within. Empty fields
// mean "none".
type guardrails struct {
	AllowedModels             []string `json:"allowedModels,omitempty"`
	DefaultModels             []string `json:"defaultModels,omitempty"`
	MaxRequestsPerMinute      *int64   `json:"maxRequestsPerMinute,omitempty"`
	DefaultRequestsPerMinute  *int64   `json:"defaultRequestsPerMinute,omitempty"`
	MaxTokensPerMinute        *int64   `json:"maxTokensPerMinute,omitempty"`
	DefaultTokensPerMinute    *int64   `json:"defaultTokensPerMinute,omitempty"`
	MaxConcurrentRequests     *int64   `json:"maxConcurrentRequests,omitempty"`
	DefaultConcurrentRequests *int64   `json:"defaultConcurrentRequests,omitempty"`
	// MaxBudget and DefaultBudget are written as the budget field takes
	// them ("200usd/month"); MaxBudgetAmount is the number alone, in
	// MaxBudgetUnit (usd or tokens) per MaxBudgetPeriod, for the
	// dialog's own check.
	MaxBudget       string  `json:"maxBudget,omitempty"`
	MaxBudgetAmount float64 `json:"maxBudgetAmount,omitempty"`
	MaxBudgetUnit   string  `json:"maxBudgetUnit,omitempty"`
	MaxBudgetPeriod string  `json:"maxBudgetPeriod,omitempty"`
	DefaultBudget   string  `json:"defaultBudget,omitempty"`
	// The same two as people read them: "$200/month", "5M tokens/day".
	MaxBudgetText     string `json:"maxBudgetText,omitempty"`
	DefaultBudgetText string `json:"defaultBudgetText,omitempty"`
	RequireExpiry     bool   `json:"requireExpiry,omitempty"`
	// MaxLifetime as the ConfigMap writes it ("2160h"), and in seconds.
	MaxLifetime        string `json:"maxLifetime,omitempty"`
	MaxLifetimeSeconds int64  `json:"maxLifetimeSeconds,omitempty"`
	DefaultTTL         string `json:"defaultTTL,omitempty"`
	// SetBy names where they come from, in the policy's words: "the
	// guardrails of namespace x (ConfigMap codevector-system/y)".
	SetBy string `json:"setBy,omitempty"`
}

// guardrailsTTL is how long the console reuses what it learnt: guardrails
// change rarely, the API server enforces them anyway, and each look costs
// a handful of dry-run requests.
const guardrailsTTL = 30 * time.Second

type guardrailsCache struct {
	mu      sync.Mutex // held while probing, so one probe serves every waiting dialog
	at      time.Time
	current *guardrails
}

// guardrailsPath is where the create dialog reads them.
// Under the API's prefix, so an ingress that routes the console's paths
// routes it too; no key's action is called that.
const guardrailsPath = "/api/v1/apikeys/guardrails"

// serveGuardrails: GET /api/v1/apikeys/guardrails, for the create dialog.
func (c *Console) serveGuardrails(w http.ResponseWriter, r *http.Request) {
	g, aerr := c.guardrails(r.Context(), identityFrom(r.Context()))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, g)
}

// guardrails learns the console namespace's guardrails from the API server
// itself, with server-side dry-run creates: what admission enforces is
// exactly what the dialog shows, and the gateway needs no access to the
// guardrails' ConfigMap or bindings (RBAC gives it neither, on purpose:
// config/policies/guardrails.yaml). A key without a policy comes back with
// the defaults; a key asking for the most the CRD allows, one field at a
// time, is refused with the maximum in the policy's message.
func (c *Console) guardrails(ctx context.Context, id *Identity) (*guardrails, *apiError) {
	gc := &c.guardrailsCache
	gc.mu.Lock()
	defer gc.mu.Unlock()
	if gc.current != nil && c.now().Sub(gc.at) < guardrailsTTL {
		return gc.current, nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	g := &guardrails{}
	// probe dry-runs a key; accepted is false when the guardrails refused
	// it (and g has learnt why), err is any other failure.
	probe := func(mutate func(*gatewayv1alpha1.APIKeySpec)) (k *gatewayv1alpha1.APIKey, accepted bool, err error) {
		k = &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: c.opts.Namespace, GenerateName: "guardrails-probe-"}}
		k.Spec.Owner = id.User
		mutate(&k.Spec)
		switch err := c.writer.Create(ctx, k, client.DryRunAll); {
		case err == nil:
			return k, true, nil
		case g.learn(apiMessage(err)):
			return k, false, nil
		default:
			return nil, false, err
		}
	}
	hour, _ := gatewayv1alpha1.NewLifetime("1h")
	defaults, accepted, err := probe(func(*gatewayv1alpha1.APIKeySpec) {})
	askedTTL := false
	if err == nil && !accepted && g.RequireExpiry {
		// No default lifetime fills in for the one the guardrails
		// require: ask again with one, for the other defaults.
		askedTTL = true
		defaults, accepted, err = probe(func(s *gatewayv1alpha1.APIKeySpec) { s.TTL = hour })
	}
	if err != nil {
		return nil, c.guardrailsError(err)
	}
	if accepted {
		g.defaultsFrom(&defaults.Spec)
		if askedTTL {
			g.DefaultTTL = "" // ours, not the namespace's
		}
	}

	most := func(n int64) *int64 { return &n }
	mostConcurrent := int32(100000)
	for _, ask := range []func(*gatewayv1alpha1.APIKeySpec){
		func(s *gatewayv1alpha1.APIKeySpec) { s.Models = []gatewayv1alpha1.ModelGlob{"*"} },
		func(s *gatewayv1alpha1.APIKeySpec) {
			s.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: most(1000000000)}
		},
		func(s *gatewayv1alpha1.APIKeySpec) {
			s.Limits = &gatewayv1alpha1.Limits{TokensPerMinute: most(1000000000000)}
		},
		func(s *gatewayv1alpha1.APIKeySpec) {
			s.Limits = &gatewayv1alpha1.Limits{ConcurrentRequests: &mostConcurrent}
		},
		func(s *gatewayv1alpha1.APIKeySpec) {
			s.Budget = &gatewayv1alpha1.Budget{USD: "999999999", Period: gatewayv1alpha1.BudgetTotal}
		},
		func(s *gatewayv1alpha1.APIKeySpec) { s.TTL, _ = gatewayv1alpha1.NewLifetime("9999w") },
	} {
		if _, _, err := probe(func(s *gatewayv1alpha1.APIKeySpec) {
			if g.RequireExpiry && g.DefaultTTL == "" {
				s.TTL = hour
			}
			ask(s)
		}); err != nil {
			return nil, c.guardrailsError(err)
		}
	}
	gc.current, gc.at = g, c.now()
	return g, nil
}

func (c *Console) guardrailsError(err error) *apiError {
	if isMissingGuardrails(err, c.opts.Namespace) {
		msg, _ := gatewayv1alpha1.ExplainMissingGuardrails(apiMessage(err), c.opts.Namespace)
		return &apiError{http.StatusConflict, "guardrails_missing", "New keys cannot be created: " + msg + "."}
	}
	c.log.Warn("Could not read the console namespace's guardrails", "namespace", c.opts.Namespace, "error", err)
	return &apiError{http.StatusBadGateway, "guardrails_unknown", "The namespace's guardrails could not be read; the API server still enforces them when you create the key."}
}

// The messages of config/policies/guardrails.yaml that carry a maximum.
var (
	guardrailModels   = regexp.MustCompile(`^spec\.models must name only models within (.+), as set by (.+)$`)
	guardrailLimit    = regexp.MustCompile(`^spec\.limits\.(requestsPerMinute|tokensPerMinute|concurrentRequests) must be at most ([0-9]+), as set by (.+)$`)
	guardrailBudget   = regexp.MustCompile(`^spec\.budget must be at most ([0-9.]+) (usd|tokens) per (day|week|month|total), as set by (.+)$`)
	guardrailLifetime = regexp.MustCompile(`^the key must expire within (\S+) of its creation \(spec\.ttl or spec\.expiresAt\), as set by (.+)$`)
	guardrailExpiry   = regexp.MustCompile(`^every key needs an expiry \(spec\.ttl or spec\.expiresAt\), as set by (.+)$`)
)

// learn records the maximum a guardrails refusal names, and says whether
// the message was one.
func (g *guardrails) learn(message string) bool {
	_, why, ok := strings.Cut(message, "denied request: ")
	if !ok {
		return false
	}
	why = strings.TrimSuffix(why, ".")
	if m := guardrailModels.FindStringSubmatch(why); m != nil {
		g.AllowedModels, g.SetBy = splitModels(m[1]), m[2]
		return true
	}
	if m := guardrailLimit.FindStringSubmatch(why); m != nil {
		n, err := strconv.ParseInt(m[2], 10, 64)
		if err != nil {
			return false
		}
		switch m[1] {
		case "requestsPerMinute":
			g.MaxRequestsPerMinute = &n
		case "tokensPerMinute":
			g.MaxTokensPerMinute = &n
		default:
			g.MaxConcurrentRequests = &n
		}
		g.SetBy = m[3]
		return true
	}
	if m := guardrailBudget.FindStringSubmatch(why); m != nil {
		n, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return false
		}
		g.MaxBudget, g.MaxBudgetAmount, g.MaxBudgetUnit, g.MaxBudgetPeriod, g.SetBy = m[1]+m[2]+"/"+m[3], n, m[2], m[3], m[4]
		if b, err := gatewayv1alpha1.ParseBudget(g.MaxBudget); err == nil {
			g.MaxBudgetText = b.Summary()
		}
		return true
	}
	if m := guardrailLifetime.FindStringSubmatch(why); m != nil {
		d, err := gatewayv1alpha1.ParseLifetime(m[1])
		if err != nil {
			return false
		}
		g.MaxLifetime, g.MaxLifetimeSeconds, g.SetBy = m[1], int64(d/time.Second), m[2]
		return true
	}
	if m := guardrailExpiry.FindStringSubmatch(why); m != nil {
		g.RequireExpiry, g.SetBy = true, m[1]
		return true
	}
	return false
}

// defaultsFrom records what the guardrails' defaults filled into a key
// created without a policy.
func (g *guardrails) defaultsFrom(s *gatewayv1alpha1.APIKeySpec) {
	for _, m := range s.Models {
		g.DefaultModels = append(g.DefaultModels, string(m))
	}
	if l := s.Limits; l != nil {
		g.DefaultRequestsPerMinute, g.DefaultTokensPerMinute = l.RequestsPerMinute, l.TokensPerMinute
		if l.ConcurrentRequests != nil {
			n := int64(*l.ConcurrentRequests)
			g.DefaultConcurrentRequests = &n
		}
	}
	if b := s.Budget; b != nil {
		if b.Tokens != nil {
			g.DefaultBudget = strconv.FormatInt(*b.Tokens, 10) + "tokens/" + string(b.EffectivePeriod())
		} else {
			g.DefaultBudget = b.USD + "usd/" + string(b.EffectivePeriod())
		}
		g.DefaultBudgetText = b.Summary()
	}
	if s.TTL != nil {
		g.DefaultTTL = s.TTL.String()
	}
}

func splitModels(list string) []string {
	var out []string
	for _, m := range strings.Split(list, ",") {
		if m = strings.TrimSpace(m); m != "" {
			out = append(out, m)
		}
	}
	return out
}
