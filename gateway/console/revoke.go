package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
)

// revokeKey sets spec.revoked on a key id may manage in the console
// namespace. Keys of other users are "not found", so nobody learns which
// names others use. So are keys in other namespaces, although the list
// shows them: the gateway faces the internet and may patch APIKeys only in
// the console namespace (config/rbac/gateway_role.yaml); their owners
// revoke them with kubectl, as the page tells them.
func (c *Console) revokeKey(ctx context.Context, id *Identity, name string) (keyItem, *apiError) {
	notFound := &apiError{http.StatusNotFound, "not_found", fmt.Sprintf("You have no API key named %q.", name)}
	if len(validation.IsDNS1123Subdomain(name)) > 0 {
		return keyItem{}, notFound
	}
	k := c.keys.APIKey(types.NamespacedName{Namespace: c.opts.Namespace, Name: name})
	if k == nil || !id.mayManage(k.Owner) {
		return keyItem{}, notFound
	}
	if !k.Revoked {
		if err := c.writer.Patch(ctx, objectOf(k), revokePatch(k.UID)); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return keyItem{}, notFound
			}
			c.log.Error("Failed to revoke API key", "apikey", k.Name.String(), "error", err)
			return keyItem{}, &apiError{http.StatusBadGateway, "revoke_failed", "The key could not be revoked: the Kubernetes API server did not accept the change. Try again in a moment."}
		}
		c.log.Info("Revoked API key in the console", "apikey", k.Name.String(), "prefix", k.Prefix, "owner", k.Owner, "by", id.User)
	}
	// Wait until this gateway's index has seen it, so the page's next list
	// already shows the key as Revoked. Other gateways refuse the key as
	// soon as their own watch delivers the change.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if cur, err := c.waitFor(waitCtx, k.Name, k.UID, func(k *keyindex.APIKeyFacts) (bool, error) { return k.Revoked, nil }); err == nil {
		k = cur
	} else {
		revoked := *k
		revoked.Revoked = true
		k = &revoked
	}
	return itemOf(k, c.now()), nil
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
