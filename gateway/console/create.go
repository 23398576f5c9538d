package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

// createRequest is the body of POST /api/v1/apikeys. Every field is
// optional; expiresAt and ttl exclude each other.
type createRequest struct {
	// Name is the APIKey's metadata.name; generated from DisplayName when empty.
	Name        string     `json:"name"`
	DisplayName string     `json:"displayName"`
	ExpiresAt   *time.Time `json:"expiresAt"`
	// TTL is a lifetime as spec.ttl takes it: "30d", "720h".
	TTL string `json:"ttl"`
	// The key's models, limits and budget, as an admin sets them later
	// (policyRequest); absent ones get the namespace guardrails' defaults.
	policyRequest
}

// createResponse carries the key: the only response that ever does.
type createResponse struct {
	APIKey keyItem `json:"apiKey"`
	Key    string  `json:"key"`
}

// maxDisplayName matches the CRD's limit.
const maxDisplayName = 128

// toAPIKey validates the request and builds the APIKey it asks for, with
// messages a person can act on.
func (req createRequest) toAPIKey(namespace, owner string, now time.Time) (*gatewayv1alpha1.APIKey, *apiError) {
	k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: namespace}}
	k.Spec.Owner = owner

	name := strings.TrimSpace(req.Name)
	if name != "" {
		if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
			return nil, &apiError{http.StatusBadRequest, "invalid_name", fmt.Sprintf(
				"%q cannot be used as a resource name: use up to 63 lowercase letters, digits and hyphens, starting and ending with a letter or digit (for example \"laptop\" or \"ci-2\").", name)}
		}
		k.Name = name
	}

	display := strings.TrimSpace(req.DisplayName)
	if utf8.RuneCountInString(display) > maxDisplayName {
		return nil, &apiError{http.StatusBadRequest, "invalid_display_name", fmt.Sprintf("The name is too long: use at most %d characters.", maxDisplayName)}
	}
	if strings.ContainsFunc(display, unicode.IsControl) {
		return nil, &apiError{http.StatusBadRequest, "invalid_display_name", "The name cannot contain line breaks or other control characters."}
	}
	k.Spec.DisplayName = display
	if k.Name == "" {
		k.GenerateName = slug(display) + "-"
	}

	switch {
	case req.ExpiresAt != nil && req.TTL != "":
		return nil, &apiError{http.StatusBadRequest, "invalid_expiry", "Give either an expiry date (expiresAt) or a lifetime (ttl), not both."}
	case req.ExpiresAt != nil:
		if !req.ExpiresAt.After(now.Add(time.Minute)) {
			return nil, &apiError{http.StatusBadRequest, "invalid_expiry", "The expiry date must be in the future."}
		}
		k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(*req.ExpiresAt)
	case req.TTL != "":
		l, err := gatewayv1alpha1.NewLifetime(req.TTL)
		if err != nil || l.Duration < time.Minute {
			return nil, &apiError{http.StatusBadRequest, "invalid_expiry", fmt.Sprintf("%q is not a usable lifetime: give one of at least a minute, such as \"30d\" or \"720h\" for 30 days.", req.TTL)}
		}
		k.Spec.TTL = l
	}
	models, limits, budget, aerr := req.spec()
	if aerr != nil {
		return nil, aerr
	}
	for _, m := range models {
		k.Spec.Models = append(k.Spec.Models, gatewayv1alpha1.ModelGlob(m))
	}
	k.Spec.Limits, k.Spec.Budget = limits, budget
	return k, nil
}

// slug turns a display name into a resource name: "Alice's laptop" ->
// "alice-s-laptop" (createNamed makes it unique), so kubectl users
// recognise console keys.
func slug(display string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(display) {
		if r < 0x80 && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
		if b.Len() >= 40 {
			break
		}
	}
	s := strings.Trim(b.String(), "-")
	if s == "" {
		return "key"
	}
	return s
}

// createNamed creates k. A k without a name the user chose (GenerateName
// set) gets the first free one of slug, slug-2 ... slug-20 in the key
// index, so "laptop" is still "laptop" in kubectl; should another create
// take that name meanwhile, or all be taken, the API server's random
// suffix makes it unique instead.
func (c *Console) createNamed(ctx context.Context, k *gatewayv1alpha1.APIKey) error {
	if k.Name != "" || k.GenerateName == "" {
		return c.writer.Create(ctx, k)
	}
	base := strings.TrimSuffix(k.GenerateName, "-")
	for i := 1; i <= 20; i++ {
		name := base
		if i > 1 {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		if c.keys.APIKey(types.NamespacedName{Namespace: k.Namespace, Name: name}) != nil {
			continue
		}
		k.Name = name
		err := c.writer.Create(ctx, k)
		if !apierrors.IsAlreadyExists(err) {
			return err
		}
		k.Name = ""
		break
	}
	return c.writer.Create(ctx, k)
}

// createKey creates the APIKey, waits until the controller has issued it,
// and consumes its one-shot reveal (keys/request, as the CLI does): the
// plaintext returned here is the only copy anyone will ever get.
//
// The key is sealed to a key pair made for this one request, whose private
// half lives only in this function's memory: the reveal Secret the
// controller writes is useless to anyone who reads it, the gateway
// included once this request has returned.
func (c *Console) createKey(ctx context.Context, id *Identity, req createRequest) (keyItem, keys.Key, *apiError) {
	// created names the key once it is Active, for the next holder of the
	// create lock.
	var created string
	unlock, aerr := c.lockUserCreates(ctx, id, &created)
	if aerr != nil {
		return keyItem{}, keys.Key{}, aerr
	}
	defer unlock()
	if aerr := c.checkKeyQuota(id); aerr != nil {
		return keyItem{}, keys.Key{}, aerr
	}
	k, aerr := req.toAPIKey(c.opts.Namespace, id.User, c.now())
	if aerr != nil {
		return keyItem{}, keys.Key{}, aerr
	}
	private, err := seal.NewPrivateKey()
	if err != nil {
		c.log.Error("Failed to generate a reveal key pair", "error", err)
		return keyItem{}, keys.Key{}, &apiError{http.StatusInternalServerError, "create_failed", "The key could not be created: the gateway could not generate a key pair. Try again."}
	}
	k.Spec.RevealPublicKey = private.PublicKey()
	if err := c.createNamed(ctx, k); err != nil {
		return keyItem{}, keys.Key{}, c.createError(k, err)
	}
	nn := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	log := c.log.With("apikey", nn.String(), "owner", id.User)

	issued, plain, err := request.Receive(ctx, c.writer, nn, k.UID, c.opts.CreateTimeout, nil, private)
	if err != nil {
		return keyItem{}, keys.Key{}, c.createFailure(k, issued, err, log)
	}
	created = nn.String()
	log.Info("Created API key in the console", "prefix", plain.DisplayPrefix())
	return itemOf(c.indexed(ctx, issued, log), c.now()), plain, nil
}

// lockUserCreates takes the user's create lock when keys per user are
// limited: held until the new key is Active in the index (or the create
// failed), so the next create of this user counts it: on this replica
// first (no round trips for a burst from one browser), then on every
// replica (createlock.go). The returned func releases it, recording
// *created, the key made under it.
func (c *Console) lockUserCreates(ctx context.Context, id *Identity, created *string) (func(), *apiError) {
	if c.maxKeysPerUser() <= 0 {
		return func() {}, nil
	}
	unlock, err := c.lockCreates(ctx, id.User)
	if err != nil {
		return nil, &apiError{http.StatusServiceUnavailable, "create_abandoned", "The key was not created: your other keys being created took too long. Try again."}
	}
	if c.opts.Kubernetes == nil {
		return unlock, nil
	}
	l, err := c.lockCreatesEverywhere(ctx, id.User)
	if err != nil {
		unlock()
		c.log.Warn("Refused a console key: no create lock", "owner", id.User, "error", err)
		return nil, &apiError{http.StatusServiceUnavailable, "create_abandoned", "The key was not created: your other keys being created took too long, or the gateway could not reach the API server. Try again."}
	}
	return func() {
		l.release(context.WithoutCancel(ctx), *created)
		unlock()
	}, nil
}

// indexed waits until this gateway's index holds issued as Active, so the
// user's next create counts it (checkKeyQuota reads the index) and the
// page's next list shows it; at most CreateTimeout, after which the key
// is answered as the API server has it.
func (c *Console) indexed(ctx context.Context, issued *gatewayv1alpha1.APIKey, log *slog.Logger) *keyindex.APIKeyFacts {
	waitCtx, cancel := context.WithTimeout(ctx, c.opts.CreateTimeout)
	defer cancel()
	f, err := c.waitFor(waitCtx, client.ObjectKeyFromObject(issued), issued.UID, func(k *keyindex.APIKeyFacts) (bool, error) {
		return k.Phase == gatewayv1alpha1.PhaseActive, nil
	})
	if err != nil {
		log.Warn("This gateway's key index did not show a new console key in time", "timeout", c.opts.CreateTimeout)
		facts := keyindex.APIKeyFactsOf(issued)
		return &facts
	}
	return f
}

// createFailure explains a key the controller did not issue (issued nil),
// or issued but whose reveal could not be read, and revokes it unless
// someone else holds it.
func (c *Console) createFailure(k *gatewayv1alpha1.APIKey, issued *gatewayv1alpha1.APIKey, err error, log *slog.Logger) *apiError {
	switch {
	case issued != nil && errors.Is(err, reveal.ErrAlreadyRevealed):
		// Someone with access to the namespace read it first (the CLI,
		// kubectl): they hold the key, so it is not revoked here.
		log.Warn("Console key was revealed by someone else first")
		return &apiError{http.StatusConflict, "already_revealed",
			"The key was created, but it was retrieved elsewhere before the console could show it. Revoke it if that was not you, and create a new one."}
	case issued != nil:
		c.abandon(k, log)
		log.Error("Failed to reveal a console key", "error", err)
		return &apiError{http.StatusBadGateway, "reveal_failed", fmt.Sprintf(
			"The key was created but could not be shown (%v), so it has been revoked. Try again.", err)}
	case errors.Is(err, request.ErrTimeout):
		c.abandon(k, log)
		log.Warn("Controller did not issue a console key in time", "timeout", c.opts.CreateTimeout)
		return &apiError{http.StatusGatewayTimeout, "controller_timeout", fmt.Sprintf(
			"The key could not be created: the controller did not answer within %s. Try again; if it keeps happening, ask your administrator to check the codevector manager.", humanSeconds(c.opts.CreateTimeout))}
	default:
		c.abandon(k, log)
		log.Error("Failed to issue a console key", "error", err)
		return &apiError{http.StatusBadGateway, "create_failed", fmt.Sprintf(
			"The key could not be created: %v. Try again; if it keeps happening, ask your administrator to check the codevector manager.", err)}
	}
}

func humanSeconds(d time.Duration) string {
	switch {
	case d == time.Second:
		return "1 second"
	case d%time.Second == 0:
		return fmt.Sprintf("%d seconds", int(d/time.Second))
	default:
		return d.String()
	}
}

// createError explains a refused create.
func (c *Console) createError(k *gatewayv1alpha1.APIKey, err error) *apiError {
	switch {
	case apierrors.IsAlreadyExists(err):
		return &apiError{http.StatusConflict, "name_taken", fmt.Sprintf(
			"A key named %q already exists. Choose another resource name, or leave it empty to have one generated.", k.Name)}
	case isMissingGuardrails(err, k.Namespace):
		msg, _ := gatewayv1alpha1.ExplainMissingGuardrails(apiMessage(err), k.Namespace)
		c.log.Error("Namespace guardrails have no ConfigMap; new keys are refused until a cluster admin restores it", "namespace", k.Namespace, "error", err)
		return &apiError{http.StatusConflict, "guardrails_missing", "The key could not be created: " + msg + "."}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &apiError{http.StatusBadRequest, "invalid_request", "The key could not be created: " + apiMessage(err)}
	case apierrors.IsForbidden(err) && strings.Contains(apiMessage(err), "denied request: "):
		// An admission policy's refusal, such as the namespace's guardrails:
		// `... ValidatingAdmissionPolicy '...' with binding '...' denied
		// request: <why>`.
		_, why, _ := strings.Cut(apiMessage(err), "denied request: ")
		return &apiError{http.StatusBadRequest, "refused_by_policy", "The key could not be created: " + strings.TrimSuffix(why, ".") + "."}
	case isNamespaceQuotaRefusal(err):
		return c.namespaceQuotaError(k, err)
	case apierrors.IsForbidden(err):
		c.log.Error("API server refused a console key; check the gateway's RBAC and the admission policies", "namespace", k.Namespace, "error", err)
		return &apiError{http.StatusInternalServerError, "gateway_forbidden", fmt.Sprintf(
			"The key could not be created: the gateway is not allowed to create keys in namespace %q (%s). Ask your administrator to check the gateway's permissions.", k.Namespace, apiMessage(err))}
	default:
		c.log.Error("Failed to create a console key", "error", err)
		return &apiError{http.StatusBadGateway, "apiserver_error", "The key could not be created: the Kubernetes API server did not accept the request. Try again in a moment."}
	}
}

// isMissingGuardrails: the namespace is bound to guardrails whose
// ConfigMap is gone, so the API server refuses every new key there.
func isMissingGuardrails(err error, namespace string) bool {
	_, ok := gatewayv1alpha1.ExplainMissingGuardrails(apiMessage(err), namespace)
	return ok
}

func apiMessage(err error) string {
	var se apierrors.APIStatus
	if errors.As(err, &se) && se.Status().Message != "" {
		return se.Status().Message
	}
	return err.Error()
}
