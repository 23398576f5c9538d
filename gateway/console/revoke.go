package console

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/gorilla/mux"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/keys/access"
)

// revokeResponse is the answer of POST /api/v1/apikeys/{name}/revoke: the
// key, and whether every gateway replica refuses it.
type revokeResponse struct {
	keyItem
	Revocation revocationItem `json:"revocation"`
}

// revocationItem says how many gateway replicas refuse the key, and which
// do not (gateway/replicas).
type revocationItem struct {
	// Confirmed: every live gateway replica refuses the key.
	Confirmed bool `json:"confirmed"`
	// Refusing of Replicas live replicas refuse it.
	Refusing int `json:"refusing"`
	Replicas int `json:"replicas"`
	// Pending are the live replicas that did not confirm in time.
	Pending []replicas.Replica `json:"pending,omitempty"`
	// ElapsedMS is how long the confirmation took (or the bound it hit).
	ElapsedMS int64 `json:"elapsedMs"`
	// Message says the above in a sentence, for people.
	Message string `json:"message"`
}

// revokeKey sets spec.revoked on a key id may revoke (keys/access), in
// any namespace the gateway watches, and waits (Options.ConfirmTimeout at
// most) until every gateway replica refuses it. Keys of other users are
// "not found", so nobody learns which names others use. The gateway
// patches as its service account, which the admission policy trusts to
// have checked ownership by its rule: the one access.Check applies.
func (c *Console) revokeKey(ctx context.Context, id *Identity, nn types.NamespacedName) (revokeResponse, *apiError) {
	k := c.keys.APIKey(nn)
	if k == nil {
		return revokeResponse{}, notFoundError(nn)
	}
	// A key that no longer works is confirmed again, not refused:
	// revoking twice is fine.
	if err := id.may(access.Revoke, k, c.now()); err != nil && !errors.Is(err, access.ErrNoLongerWorks) {
		return revokeResponse{}, notFoundError(nn)
	}
	// The version to confirm: the revocation's own, or, for a key revoked
	// already, the version this replica has of it (at or after its
	// revocation).
	rv := k.ResourceVersion
	if !k.Revoked {
		obj := objectOf(k)
		if err := c.writer.Patch(ctx, obj, revokePatch(k.UID)); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return revokeResponse{}, notFoundError(nn)
			}
			c.log.Error("Failed to revoke API key", "apikey", k.Name.String(), "error", err)
			return revokeResponse{}, &apiError{http.StatusBadGateway, "revoke_failed", "The key could not be revoked: the Kubernetes API server did not accept the change. Try again in a moment."}
		}
		// 0 when it is not a number (before Kubernetes 1.35 nothing
		// promised it was): then nothing is confirmed.
		rv, _ = strconv.ParseUint(obj.ResourceVersion, 10, 64)
		c.log.Info("Revoked API key in the console", "apikey", k.Name.String(), "prefix", k.Prefix, "owner", k.Owner, "by", id.User)
	}
	confirmation := c.confirmRevocation(ctx, k, rv)
	// Once confirmed, this gateway's own index has the change too, so the
	// page's next list shows the key as Revoked.
	if cur := c.keys.APIKey(k.Name); cur != nil && cur.UID == k.UID && cur.Revoked {
		k = cur
	} else {
		revoked := *k
		revoked.Revoked = true
		k = &revoked
	}
	return revokeResponse{keyItem: itemOf(k, c.now()), Revocation: confirmation}, nil
}

// confirmRevocation waits until every live gateway replica has applied the
// APIKey k at resource version rv, and says how that went.
func (c *Console) confirmRevocation(ctx context.Context, k *keyindex.APIKeyFacts, rv uint64) revocationItem {
	if rv == 0 {
		return revocationItem{Message: "Revoked, but not confirmed: the Kubernetes API server's resource versions are not numbers, so the gateway replicas' progress cannot be compared with the revocation (Kubernetes 1.35 or later)."}
	}
	res, err := replicas.Confirm(ctx, c.writer, c.opts.SystemNamespace, k.Name.Namespace, rv, c.opts.ConfirmTimeout)
	item := revocationItem{Confirmed: err == nil && res.Confirmed(), Refusing: res.Refusing(), Replicas: len(res.Replicas), ElapsedMS: res.Elapsed.Milliseconds()}
	for _, r := range res.Replicas {
		if !r.Refuses {
			item.Pending = append(item.Pending, r)
		}
	}
	switch {
	case err != nil:
		c.log.Error("Revoked an API key but could not confirm it with the gateway replicas", "apikey", k.Name.String(), "error", err)
		item.Message = "Revoked, but not confirmed: the gateway replicas could not be asked whether they refuse the key. They refuse it as soon as their watch of the API server delivers the change."
	case !item.Confirmed:
		c.log.Warn("Revoked an API key that not every gateway replica refuses yet", "apikey", k.Name.String(), "refusing", item.Refusing, "replicas", item.Replicas, "pending", item.Pending)
		item.Message = res.Summary("revoked")
	default:
		item.Message = res.Summary("revoked")
	}
	return item
}

// objectOf is the APIKey that f describes, as far as a patch or a reveal
// needs it: its name and incarnation, and its phase.
func objectOf(f *keyindex.APIKeyFacts) *gatewayv1alpha1.APIKey {
	return &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.Name.Namespace, Name: f.Name.Name, UID: f.UID},
		Status:     gatewayv1alpha1.APIKeyStatus{Phase: f.Phase, Prefix: f.Prefix},
	}
}

// abandon revokes a key whose creation failed halfway, so no key can ever
// be issued that nobody holds.
func (c *Console) abandon(k *gatewayv1alpha1.APIKey, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.writer.Patch(ctx, k.DeepCopy(), revokePatch(k.UID)); err != nil && !apierrors.IsNotFound(err) {
		log.Error("Failed to revoke an abandoned console key", "error", err)
	}
}

// revokePatch sets spec.revoked on exactly the incarnation uid (the UID in
// a merge patch is a precondition: a re-created key of the same name is not
// touched).
func revokePatch(uid types.UID) client.Patch {
	return client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"revoked":true}}`, uid))
}

// waitFor polls the key index (cheap: memory only) until done says the
// APIKey name, incarnation uid, has reached the wanted state. Reading the
// index also means the next list shows what the caller just did.
func (c *Console) waitFor(ctx context.Context, name types.NamespacedName, uid types.UID, done func(*keyindex.APIKeyFacts) (bool, error)) (*keyindex.APIKeyFacts, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if cur := c.keys.APIKey(name); cur != nil && cur.UID == uid {
			ok, err := done(cur)
			if ok || err != nil {
				return cur, err
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// keyRef is the key a request names: {name} in its path, in the namespace
// ?namespace= names, by default the console's own. A name or namespace
// that cannot exist is reported as a key that does not.
func (c *Console) keyRef(r *http.Request) (types.NamespacedName, *apiError) {
	nn := types.NamespacedName{Namespace: cmp.Or(r.URL.Query().Get("namespace"), c.opts.Namespace), Name: mux.Vars(r)["name"]}
	if len(validation.IsDNS1123Subdomain(nn.Name)) > 0 || len(validation.IsDNS1123Label(nn.Namespace)) > 0 {
		return nn, notFoundError(nn)
	}
	return nn, nil
}

// notFoundError answers for a key that does not exist or that the user
// may not see, alike.
func notFoundError(nn types.NamespacedName) *apiError {
	return &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("You have no API key named %q in namespace %s.", nn.Name, nn.Namespace)}
}
