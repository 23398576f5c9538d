package console

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

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
// reveal. Who may rotate is keys/access's rule: only the owner, admins
// included, since whoever rotates receives the key.
func (c *Console) rotateKey(ctx context.Context, id *Identity, nn types.NamespacedName, req rotateRequest) (rotateResponse, *apiError) {
	grace := 24 * time.Hour
	if req.GracePeriod != "" {
		d, err := time.ParseDuration(req.GracePeriod)
		if err != nil || d < 0 || d > maxGracePeriod {
			return rotateResponse{}, &apiError{http.StatusBadRequest, "invalid_grace_period", fmt.Sprintf(
				"%q is not a usable grace period: give a duration from \"0s\" (the old key stops at once) to \"720h\" (30 days), such as \"24h\".", req.GracePeriod)}
		}
		grace = d
	}
	f := c.keys.APIKey(nn)
	if f == nil {
		return rotateResponse{}, notFoundError(nn)
	}
	if aerr := rotateRefusal(nn, id.may(access.Rotate, f, c.now())); aerr != nil {
		return rotateResponse{}, aerr
	}
	if nn.Namespace != c.opts.Namespace {
		// The new key would be sealed into a reveal Secret in nn's
		// namespace, and the gateway may read Secrets only in its own.
		return rotateResponse{}, &apiError{http.StatusConflict, "rotate_elsewhere", fmt.Sprintf(
			"The console rotates keys only in namespace %s: the new key of this one is delivered in namespace %s, which the gateway may not read. Rotate it from a terminal: %s", c.opts.Namespace, nn.Namespace, keyItem{Name: nn.Name, Namespace: nn.Namespace}.RotateCommand())}
	}
	var (
		live      *gatewayv1alpha1.APIKey
		oldPrefix string
		private   *seal.PrivateKey
		at        metav1.Time
	)
	log := c.log.With("apikey", nn.String(), "owner", id.User)
	// The controller writes the key's status (last use, reveal) at any
	// time; a conflict with that is retried, from a fresh read.
	for attempt := 0; ; attempt++ {
		var aerr *apiError
		live, oldPrefix, private, at, aerr = c.requestRotation(ctx, id, nn, f, grace, log)
		if aerr == nil {
			break
		}
		if aerr.Code != "changed" || attempt == 4 {
			return rotateResponse{}, aerr
		}
		select {
		case <-ctx.Done():
			return rotateResponse{}, aerr
		case <-time.After(100 * time.Millisecond):
		}
	}

	// Wait for the controller on the API server itself: the index holds no
	// status.rotatedAt. The old key works until this succeeds.
	var issued *gatewayv1alpha1.APIKey
	var err error
	err = wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, c.opts.CreateTimeout, true, func(ctx context.Context) (bool, error) {
		k := &gatewayv1alpha1.APIKey{}
		if err := c.writer.Get(ctx, nn, k); err != nil {
			if apierrors.IsNotFound(err) {
				return false, errors.New("the key was deleted")
			}
			return false, nil
		}
		if k.UID != live.UID {
			return false, errors.New("the key was deleted and created again")
		}
		switch k.Status.Phase {
		case gatewayv1alpha1.PhaseRevoked, gatewayv1alpha1.PhaseExpired, gatewayv1alpha1.PhaseFailed:
			return false, fmt.Errorf("the controller marked the key %s", k.Status.Phase)
		case gatewayv1alpha1.PhaseActive:
			if k.Status.RotatedAt != nil && k.Status.RotatedAt.Equal(&at) {
				issued = k
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		if wait.Interrupted(err) && ctx.Err() == nil {
			log.Warn("Controller did not rotate a console key in time", "timeout", c.opts.CreateTimeout)
			return rotateResponse{}, &apiError{http.StatusGatewayTimeout, "controller_timeout", fmt.Sprintf(
				"The key could not be rotated: the controller did not answer within %s. The old key still works. Try again; if it keeps happening, ask your administrator to check the codevector manager.", humanSeconds(c.opts.CreateTimeout))}
		}
		log.Error("Failed to rotate a console key", "error", err)
		return rotateResponse{}, &apiError{http.StatusBadGateway, "rotate_failed", fmt.Sprintf("The key could not be rotated: %v.", err)}
	}
	var plain keys.Key
	plain, err = reveal.Consume(ctx, c.writer, issued, private)
	if err != nil {
		if errors.Is(err, reveal.ErrAlreadyRevealed) {
			log.Warn("Rotated console key was revealed by someone else first")
			return rotateResponse{}, &apiError{http.StatusConflict, "already_revealed",
				"The key was rotated, but the new key was retrieved elsewhere before the console could show it. Revoke the key if that was not you."}
		}
		log.Error("Failed to reveal a rotated console key", "error", err)
		return rotateResponse{}, &apiError{http.StatusBadGateway, "reveal_failed", fmt.Sprintf(
			"The key was rotated but the new key could not be shown (%v). The old key still works until its grace period ends; rotate again to get a new key.", err)}
	}
	log.Info("Rotated API key in the console", "prefix", plain.DisplayPrefix(), "previous", oldPrefix, "grace", grace)

	// Let this gateway's index catch up, so the page's next list shows the
	// new prefix and the old key's grace period.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	newPrefix := issued.Status.Prefix
	cur, err := c.waitFor(waitCtx, nn, live.UID, func(k *keyindex.APIKeyFacts) (bool, error) { return k.Prefix == newPrefix, nil })
	if err != nil {
		cur = f
	}
	resp := rotateResponse{APIKey: itemOf(cur, c.now()), Key: plain.Reveal(), PreviousPrefix: oldPrefix}
	if p := issued.Status.Previous; p != nil {
		t := p.ExpiresAt.UTC()
		resp.PreviousPrefix, resp.PreviousExpiresAt, resp.PreviousExpiresIn = p.Prefix, &t, humantime.Until(c.now(), t)
	}
	return resp, nil
}

// requestRotation reads the APIKey, checks it may be rotated by id, and
// sets spec.rotation with a key pair made here, on exactly the version
// read (a conflict comes back as code "changed").
func (c *Console) requestRotation(ctx context.Context, id *Identity, nn types.NamespacedName, f *keyindex.APIKeyFacts, grace time.Duration, log *slog.Logger) (*gatewayv1alpha1.APIKey, string, *seal.PrivateKey, metav1.Time, *apiError) {
	var none metav1.Time
	notFound := notFoundError(nn)
	live := &gatewayv1alpha1.APIKey{}
	if err := c.writer.Get(ctx, nn, live); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, "", nil, none, notFound
		}
		c.log.Error("Failed to read an API key to rotate", "apikey", nn.String(), "error", err)
		return nil, "", nil, none, &apiError{http.StatusBadGateway, "rotate_failed", "The key could not be rotated: the Kubernetes API server did not answer. Try again in a moment."}
	}
	if live.UID != f.UID {
		return nil, "", nil, none, notFound
	}
	// Again on the key as stored: the index may lag behind a revocation.
	if aerr := rotateRefusal(nn, access.Check(id.actor(), access.Rotate, access.Key{Owner: live.Spec.Owner, Status: live.EffectiveStatus(c.now())})); aerr != nil {
		return nil, "", nil, none, aerr
	}
	oldPrefix := live.Status.Prefix

	private, err := seal.NewPrivateKey()
	if err != nil {
		c.log.Error("Failed to generate a reveal key pair", "error", err)
		return nil, "", nil, none, &apiError{http.StatusInternalServerError, "rotate_failed", "The key could not be rotated: the gateway could not generate a key pair. Try again."}
	}
	// The request the CLI makes too (keys/request).
	rotation, err := request.NewRotation(live, c.now(), grace, private.PublicKey())
	if err != nil {
		return nil, "", nil, none, &apiError{http.StatusInternalServerError, "rotate_failed", "The key could not be rotated. Try again."}
	}
	if err := c.writer.Patch(ctx, live.DeepCopy(), rotation.Patch); err != nil {
		switch {
		case apierrors.IsConflict(err):
			return nil, "", nil, none, &apiError{http.StatusConflict, "changed", "The key changed while the console was rotating it. Reload the page and try again."}
		case apierrors.IsNotFound(err):
			return nil, "", nil, none, notFound
		case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
			return nil, "", nil, none, &apiError{http.StatusBadRequest, "invalid_request", "The key could not be rotated: " + apiMessage(err)}
		case apierrors.IsForbidden(err):
			log.Error("API server refused a console rotation; check the gateway's RBAC and the admission policies", "error", err)
			return nil, "", nil, none, &apiError{http.StatusInternalServerError, "gateway_forbidden", fmt.Sprintf(
				"The key could not be rotated: the gateway is not allowed to (%s). Ask your administrator to check the gateway's permissions.", apiMessage(err))}
		default:
			log.Error("Failed to request a rotation", "error", err)
			return nil, "", nil, none, &apiError{http.StatusBadGateway, "rotate_failed", "The key could not be rotated: the Kubernetes API server did not accept the change. Try again in a moment."}
		}
	}

	return live, oldPrefix, private, rotation.At, nil
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
