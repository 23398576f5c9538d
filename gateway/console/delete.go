package console

import (
	"context"
	"fmt"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys/access"
)

// deleteResponse is the answer of POST /api/v1/apikeys/{name}/delete.
type deleteResponse struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	// Message says what happened, for people.
	Message string `json:"message"`
}

// serveDelete: POST /api/v1/apikeys/{name}/delete[?namespace=NS]. POST
// rather than DELETE keeps the console's API to the one method the CSRF
// guard and the page's script already speak.
func (c *Console) serveDelete(w http.ResponseWriter, r *http.Request) {
	var ignored struct{}
	if r.ContentLength != 0 {
		if aerr := decodeJSON(w, r, &ignored, "none"); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	nn, aerr := c.keyRef(r)
	var resp deleteResponse
	if aerr == nil {
		resp, aerr = c.deleteKey(r.Context(), identityFrom(r.Context()), nn)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// deleteKey deletes an APIKey that no longer works (revoked, expired) and
// that id may delete (keys/access), in any namespace the gateway watches,
// as `kubectl apikey delete` does: conditional on the incarnation read, the
// manager's finalizer then removing whatever hash Secret is left. A key
// that works is refused: revoking it first is the console's confirmation,
// and the revocation is what every gateway replica confirms (revokeKey).
// So the deletion stops nothing that works and needs no confirmation by
// the replicas. It answers once this replica's index has seen the
// deletion, so the page's next list leaves the key out.
func (c *Console) deleteKey(ctx context.Context, id *Identity, nn types.NamespacedName) (deleteResponse, *apiError) {
	k := c.keys.APIKey(nn)
	if k == nil || k.Deleting {
		return deleteResponse{}, notFoundError(nn)
	}
	now := c.now()
	if err := id.may(access.Delete, k, now); err != nil {
		return deleteResponse{}, notFoundError(nn)
	}
	if status := gatewayv1alpha1.Phase(statusOf(k, now)); access.Works(status) {
		return deleteResponse{}, &apiError{http.StatusConflict, "still_works", fmt.Sprintf(
			"The key is %s: revoke it first, then delete it (or run kubectl apikey delete %s -n %s, which asks).", status, nn.Name, nn.Namespace)}
	}
	uid := k.UID
	if err := c.writer.Delete(ctx, objectOf(k), client.Preconditions{UID: &uid}); err != nil {
		switch {
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			return deleteResponse{}, notFoundError(nn)
		case apierrors.IsForbidden(err):
			c.log.Error("API server refused a console deletion; check the gateway's RBAC and the admission policies", "apikey", nn.String(), "error", err)
			return deleteResponse{}, &apiError{http.StatusInternalServerError, "gateway_forbidden", fmt.Sprintf(
				"The key could not be deleted: the gateway is not allowed to delete keys in namespace %q (%s). Ask your administrator to check the gateway's permissions.", nn.Namespace, apiMessage(err))}
		default:
			c.log.Error("Failed to delete API key", "apikey", nn.String(), "error", err)
			return deleteResponse{}, &apiError{http.StatusBadGateway, "delete_failed", "The key could not be deleted: the Kubernetes API server did not accept the request. Try again in a moment."}
		}
	}
	c.log.Info("Deleted API key in the console", "apikey", nn.String(), "prefix", k.Prefix, "owner", k.Owner, "by", id.User)
	// The index sees the deletion as the key being marked, or gone
	// once the finalizer is done.
	gone := func() bool {
		cur := c.keys.APIKey(nn)
		return cur == nil || cur.UID != uid || cur.Deleting
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(5 * time.Second)
	seen := gone()
	for !seen {
		select {
		case <-ctx.Done():
		case <-deadline:
		case <-tick.C:
			seen = gone()
			continue
		}
		break
	}
	msg := "deleted."
	if !seen {
		msg = "deleted; the list may show it for a few more seconds."
	}
	return deleteResponse{Name: nn.Name, Namespace: nn.Namespace, Message: msg}, nil
}
