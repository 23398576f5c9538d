package console

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
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
	k := &gatewayv1alpha1.APIKey{}
	if err := c.reader.Get(ctx, types.NamespacedName{Namespace: c.opts.Namespace, Name: name}, k); err != nil {
		if apierrors.IsNotFound(err) {
			return keyItem{}, notFound
		}
		return keyItem{}, &apiError{http.StatusBadGateway, "apiserver_error", "The key could not be revoked right now. Try again in a moment."}
	}
	if !id.mayManage(k.Spec.Owner) {
		return keyItem{}, notFound
	}
	if !k.Spec.Revoked {
		if err := c.writer.Patch(ctx, k.DeepCopy(), revokePatch(k)); err != nil {
			if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
				return keyItem{}, notFound
			}
			c.log.Error("Failed to revoke API key", "apikey", k.Namespace+"/"+k.Name, "error", err)
			return keyItem{}, &apiError{http.StatusBadGateway, "revoke_failed", "The key could not be revoked: the Kubernetes API server did not accept the change. Try again in a moment."}
		}
		c.log.Info("Revoked API key in the console", "apikey", k.Namespace+"/"+k.Name, "prefix", k.Status.Prefix, "owner", k.Spec.Owner, "by", id.User)
	}
	// Wait until this gateway's cache has seen it, so the page's next list
	// already shows the key as Revoked. Other gateways refuse the key as
	// soon as their own watch delivers the change.
	waitCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if cur, err := c.waitFor(waitCtx, k, func(k *gatewayv1alpha1.APIKey) (bool, error) { return k.Spec.Revoked, nil }); err == nil {
		k = cur
	} else {
		k.Spec.Revoked = true
	}
	return itemOf(k, time.Now()), nil
}

// abandon revokes a key whose creation failed halfway, so no key can ever
// be issued that nobody holds.
func (c *Console) abandon(k *gatewayv1alpha1.APIKey, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.writer.Patch(ctx, k.DeepCopy(), revokePatch(k)); err != nil && !apierrors.IsNotFound(err) {
		log.Error("Failed to revoke an abandoned console key", "error", err)
	}
}

// revokePatch sets spec.revoked on exactly the incarnation k (the UID in a
// merge patch is a precondition: a re-created key of the same name is not
// touched).
func revokePatch(k *gatewayv1alpha1.APIKey) client.Patch {
	return client.RawPatch(types.MergePatchType, fmt.Appendf(nil, `{"metadata":{"uid":%q},"spec":{"revoked":true}}`, k.UID))
}

// waitFor polls the watch cache (cheap: memory only) until done says the
// APIKey k, this incarnation of it, has reached the wanted state. Reading
// the cache also means the next list shows what the caller just did.
func (c *Console) waitFor(ctx context.Context, k *gatewayv1alpha1.APIKey, done func(*gatewayv1alpha1.APIKey) (bool, error)) (*gatewayv1alpha1.APIKey, error) {
	name := types.NamespacedName{Namespace: k.Namespace, Name: k.Name}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		cur := &gatewayv1alpha1.APIKey{}
		err := c.reader.Get(ctx, name, cur)
		switch {
		case err == nil && cur.UID == k.UID:
			ok, err := done(cur)
			if ok || err != nil {
				return cur, err
			}
		case err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil:
			return nil, fmt.Errorf("reading APIKey %s from the cache: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}
