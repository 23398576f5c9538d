package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/humantime"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/access"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

// rotateRequest is the body of POST /api/v1/apikeys/{name}/rotate; it may
// be empty. GracePeriod is a Go duration ("24h", "0s"); default 24h.
type rotateRequest struct {
	GracePeriod string `json:"gracePeriod"`
}

const rotateFields = "gracePeriod"

// maxGracePeriod keeps a typo ("2400h") from leaving an old key working
// for months.
const maxGracePeriod = 30 * 24 * time.Hour

// rotateResponse is createResponse plus what happens to the old key:
// PreviousPrefix works until PreviousExpiresAt (absent when it stopped at
// once).
type rotateResponse struct {
	APIKey            keyItem    `json:"apiKey"`
	Key               string     `json:"key"`
	PreviousPrefix    string     `json:"previousPrefix,omitempty"`
	PreviousExpiresAt *time.Time `json:"previousExpiresAt,omitempty"`
	// PreviousExpiresIn is how soon, as the page says it ("in 1 day").
	PreviousExpiresIn string `json:"previousExpiresIn,omitempty"`
}

// serveRotate: POST /api/v1/apikeys/{name}/rotate. Like create's, the
// response carries a key: it is not logged and not cached (noStore).
func (c *Console) serveRotate(w http.ResponseWriter, r *http.Request) {
	var req rotateRequest
	if aerr := decodeJSON(w, r, &req, rotateFields); aerr != nil {
		writeError(w, aerr)
		return
	}
	nn, aerr := c.keyRef(r)
	var resp rotateResponse
	if aerr == nil {
		resp, aerr = c.rotateKey(r.Context(), identityFrom(r.Context()), nn, req)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusOK, resp)
}

// rotateKey asks the controller for a new key for the APIKey name, sealed
// to a key pair made for this request only, as `kubectl apikey rotate`
// does: set spec.rotation (with a resourceVersion precondition), wait until
// status.rotatedAt names this rotation and the key is Active, consume the
// reveal (keys/request). Who may rotate is keys/access's rule: only the
// owner, admins included, since whoever rotates receives the key.
//
// The rotation asks for its reveal in the system namespace
// (spec.rotation.revealIn), the one namespace where the gateway may read
// Secrets, so the console rotates keys in every namespace it watches,
// kubectl-made ones included (docs/design.md, section 13).
func (c *Console) rotateKey(ctx context.Context, id *Identity, nn types.NamespacedName, req rotateRequest) (rotateResponse, *apiError) {
	grace, aerr := parseGracePeriod(req.GracePeriod)
	if aerr != nil {
		return rotateResponse{}, aerr
	}
	f := c.keys.APIKey(nn)
	if f == nil {
		return rotateResponse{}, notFoundError(nn)
	}
	if aerr := rotateRefusal(nn, id.may(access.Rotate, f, c.now())); aerr != nil {
		return rotateResponse{}, aerr
	}
	log := c.log.With("apikey", nn.String(), "owner", id.User)
	asked, aerr := c.requestRotationRetrying(ctx, id, nn, f, grace, log)
	if aerr != nil {
		return rotateResponse{}, aerr
	}
	// The old key works until this succeeds.
	issued, plain, err := request.Receive(ctx, c.writer, nn, asked.live.UID, c.opts.CreateTimeout, asked.rotation.Done, asked.private)
	if err != nil {
		return rotateResponse{}, c.rotateFailure(issued, err, log)
	}
	log.Info("Rotated API key in the console", "prefix", plain.DisplayPrefix(), "previous", asked.live.Status.Prefix, "grace", grace)
	return c.rotated(ctx, nn, f, asked.live, issued, plain), nil
}

// parseGracePeriod reads rotateRequest.GracePeriod; default 24h.
func parseGracePeriod(s string) (time.Duration, *apiError) {
	if s == "" {
		return 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > maxGracePeriod {
		return 0, &apiError{http.StatusBadRequest, "invalid_grace_period", fmt.Sprintf(
			"%q is not a usable grace period: give a duration from \"0s\" (the old key stops at once) to \"720h\" (30 days), such as \"24h\".", s)}
	}
	return d, nil
}

// rotateFailure explains a rotation the controller did not carry out
// (issued nil), or whose new key could not be shown.
func (c *Console) rotateFailure(issued *gatewayv1alpha1.APIKey, err error, log *slog.Logger) *apiError {
	switch {
	case issued == nil && errors.Is(err, request.ErrTimeout):
		log.Warn("Controller did not rotate a console key in time", "timeout", c.opts.CreateTimeout)
		return &apiError{http.StatusGatewayTimeout, "controller_timeout", fmt.Sprintf(
			"The key could not be rotated: the controller did not answer within %s. The old key still works. Try again; if it keeps happening, ask your administrator to check the codevector manager.", humanSeconds(c.opts.CreateTimeout))}
	case issued == nil:
		log.Error("Failed to rotate a console key", "error", err)
		return &apiError{http.StatusBadGateway, "rotate_failed", fmt.Sprintf("The key could not be rotated: %v.", err)}
	case errors.Is(err, reveal.ErrAlreadyRevealed):
		log.Warn("Rotated console key was revealed by someone else first")
		return &apiError{http.StatusConflict, "already_revealed",
			"The key was rotated, but the new key was retrieved elsewhere before the console could show it. Revoke the key if that was not you."}
	default:
		log.Error("Failed to reveal a rotated console key", "error", err)
		return &apiError{http.StatusBadGateway, "reveal_failed", fmt.Sprintf(
			"The key was rotated but the new key could not be shown (%v). The old key still works until its grace period ends; rotate again to get a new key.", err)}
	}
}

// rotated is the answer to a rotation carried out: the key, and until
// when the old one works. It lets this gateway's index catch up first, so
// the page's next list shows the new prefix and the old key's grace period.
func (c *Console) rotated(ctx context.Context, nn types.NamespacedName, f *keyindex.APIKeyFacts, live, issued *gatewayv1alpha1.APIKey, plain keys.Key) rotateResponse {
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	newPrefix := issued.Status.Prefix
	cur, err := c.waitFor(waitCtx, nn, live.UID, func(k *keyindex.APIKeyFacts) (bool, error) { return k.Prefix == newPrefix, nil })
	if err != nil {
		cur = f
	}
	resp := rotateResponse{APIKey: itemOf(cur, c.now()), Key: plain.Reveal(), PreviousPrefix: live.Status.Prefix}
	if p := issued.Status.Previous; p != nil {
		t := p.ExpiresAt.UTC()
		resp.PreviousPrefix, resp.PreviousExpiresAt, resp.PreviousExpiresIn = p.Prefix, &t, humantime.Until(c.now(), t)
	}
	return resp
}

// askedRotation is a rotation requested of the API server: of the APIKey
// live, sealed to private's public half.
type askedRotation struct {
	live     *gatewayv1alpha1.APIKey
	private  *seal.PrivateKey
	rotation request.Rotation
}

// requestRotationRetrying is requestRotation, retried from a fresh read
// when the key changed meanwhile: the controller and the gateways write
// its status (last use, reveal) at any time.
func (c *Console) requestRotationRetrying(ctx context.Context, id *Identity, nn types.NamespacedName, f *keyindex.APIKeyFacts, grace time.Duration, log *slog.Logger) (askedRotation, *apiError) {
	for attempt := 0; ; attempt++ {
		asked, aerr := c.requestRotation(ctx, id, nn, f, grace, log)
		if aerr == nil || aerr.Code != "changed" || attempt == 4 {
			return asked, aerr
		}
		select {
		case <-ctx.Done():
			return askedRotation{}, aerr
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// requestRotation reads the APIKey, checks it may be rotated by id, and
// sets spec.rotation with a key pair made here, on exactly the version
// read (a conflict comes back as code "changed").
func (c *Console) requestRotation(ctx context.Context, id *Identity, nn types.NamespacedName, f *keyindex.APIKeyFacts, grace time.Duration, log *slog.Logger) (askedRotation, *apiError) {
	notFound := notFoundError(nn)
	live := &gatewayv1alpha1.APIKey{}
	if err := c.writer.Get(ctx, nn, live); err != nil {
		if apierrors.IsNotFound(err) {
			return askedRotation{}, notFound
		}
		c.log.Error("Failed to read an API key to rotate", "apikey", nn.String(), "error", err)
		return askedRotation{}, &apiError{http.StatusBadGateway, "rotate_failed", "The key could not be rotated: the Kubernetes API server did not answer. Try again in a moment."}
	}
	if live.UID != f.UID {
		return askedRotation{}, notFound
	}
	// Again on the key as stored: the index may lag behind a revocation.
	if aerr := rotateRefusal(nn, access.Check(id.actor(), access.Rotate, access.Key{Owner: live.Spec.Owner, Status: live.EffectiveStatus(c.now())})); aerr != nil {
		return askedRotation{}, aerr
	}
	private, err := seal.NewPrivateKey()
	if err != nil {
		c.log.Error("Failed to generate a reveal key pair", "error", err)
		return askedRotation{}, &apiError{http.StatusInternalServerError, "rotate_failed", "The key could not be rotated: the gateway could not generate a key pair. Try again."}
	}
	// The request the CLI makes too (keys/request), but with the reveal in
	// the system namespace, which only the gateway may ask for.
	rotation, err := request.NewRotation(live, c.now(), grace, private.PublicKey(), gatewayv1alpha1.RevealInSystemNamespace)
	if err != nil {
		return askedRotation{}, &apiError{http.StatusInternalServerError, "rotate_failed", "The key could not be rotated. Try again."}
	}
	if err := c.writer.Patch(ctx, live.DeepCopy(), rotation.Patch); err != nil {
		return askedRotation{}, c.rotationPatchError(nn, err, log)
	}
	return askedRotation{live: live, private: private, rotation: rotation}, nil
}

// rotationPatchError explains a refused spec.rotation patch.
func (c *Console) rotationPatchError(nn types.NamespacedName, err error, log *slog.Logger) *apiError {
	switch {
	case apierrors.IsConflict(err):
		return &apiError{http.StatusConflict, "changed", "The key changed while the console was rotating it. Reload the page and try again."}
	case apierrors.IsNotFound(err):
		return notFoundError(nn)
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &apiError{http.StatusBadRequest, "invalid_request", "The key could not be rotated: " + apiMessage(err)}
	case apierrors.IsForbidden(err):
		log.Error("API server refused a console rotation; check the gateway's RBAC and the admission policies", "error", err)
		return &apiError{http.StatusInternalServerError, "gateway_forbidden", fmt.Sprintf(
			"The key could not be rotated: the gateway is not allowed to (%s). Ask your administrator to check the gateway's permissions.", apiMessage(err))}
	default:
		log.Error("Failed to request a rotation", "error", err)
		return &apiError{http.StatusBadGateway, "rotate_failed", "The key could not be rotated: the Kubernetes API server did not accept the change. Try again in a moment."}
	}
}

// rotateRefusal turns keys/access's refusal into the console's answer.
func rotateRefusal(nn types.NamespacedName, err error) *apiError {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, access.ErrOwnerOnly):
		return &apiError{http.StatusForbidden, "not_owner", "Only the key's owner can rotate it: only the owner receives the new key. You can revoke it instead."}
	case errors.Is(err, access.ErrNotActive):
		return &apiError{http.StatusConflict, "not_active", "The key cannot be rotated: " + err.Error() + "."}
	default:
		return notFoundError(nn)
	}
}
