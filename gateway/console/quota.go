package console

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// DefaultMaxKeysPerUser is how many active keys a user may hold before the
// console refuses to create another (--max-keys-per-user).
const DefaultMaxKeysPerUser = 100

// maxKeysPerUser is the limit in force; zero means none.
func (c *Console) maxKeysPerUser() int {
	switch n := c.opts.MaxKeysPerUser; {
	case n < 0:
		return 0
	case n == 0:
		return DefaultMaxKeysPerUser
	default:
		return n
	}
}

// checkKeyQuota refuses a create when id already holds the most keys a
// user may: one user clicking "Create key" in a loop would otherwise fill
// etcd and every cache that holds APIKeys (the gateways', the manager's).
//
// It counts id's keys that work or may yet work (Active and Pending: not
// Revoked, Expired or Failed, as the list shows them) in every namespace
// the gateway watches, not only the console's: the limit is per owner, and
// a key made with kubectl in a team namespace is as much the user's as one
// made here (the admission policy makes whoever creates a key its owner).
// Revoking any of them, here or with kubectl, makes room.
//
// The count comes from the key index. A user's creates are serialised
// from this check until the new key is Active in the index: on one
// replica (lockCreates), and across replicas by a lock in the API server
// (createlock.go) whose next holder first waits for the key the previous
// one created to reach its own index. So concurrent creates cannot all
// pass a count that none of them is in yet. A hard cap on every path
// (kubectl and GitOps included) is a namespace ResourceQuota on
// count/apikeys.gateway.codevector.io (config/quota).
func (c *Console) checkKeyQuota(id *Identity) *apiError {
	limit := c.maxKeysPerUser()
	if limit == 0 {
		return nil
	}
	now := c.now()
	held, elsewhere := 0, 0
	for _, k := range c.keys.APIKeys() {
		if k.Owner != id.User {
			continue
		}
		switch statusOf(k, now) {
		case StatusRevoked, StatusExpired, StatusFailed:
			continue
		}
		held++
		if k.Name.Namespace != c.opts.Namespace {
			elsewhere++
		}
	}
	if held < limit {
		return nil
	}
	c.log.Info("Refused a console key: the user holds the most keys allowed", "owner", id.User, "active", held, "limit", limit)
	msg := fmt.Sprintf("You have %s, the most this gateway allows per user.", activeKeys(held))
	if held > limit {
		msg = fmt.Sprintf("You have %s; this gateway allows at most %d per user.", activeKeys(held), limit)
	}
	msg += " Revoke a key you no longer use, then try again."
	if elsewhere > 0 {
		msg += " Keys made with kubectl count too: the list shows them with their namespace."
	}
	// 403, not 429: 429 tells clients to wait and retry (the gateway's own
	// rate and budget refusals carry a Retry-After), but waiting changes
	// nothing here; only revoking a key does. The API server answers a
	// ResourceQuota refusal with 403 too.
	return &apiError{http.StatusForbidden, "key_quota_exceeded", msg}
}

// lockCreates waits until no other create of user is in flight on this
// replica, and returns the function that lets the next one go. It gives up
// when ctx ends (the request was abandoned or timed out).
func (c *Console) lockCreates(ctx context.Context, user string) (unlock func(), err error) {
	v, _ := c.creating.LoadOrStore(user, make(chan struct{}, 1))
	lock := v.(chan struct{})
	select {
	case lock <- struct{}{}:
		return func() { <-lock }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func activeKeys(n int) string {
	if n == 1 {
		return "1 active key"
	}
	return fmt.Sprintf("%d active keys", n)
}

// isNamespaceQuotaRefusal tells whether the API server refused a create
// because a ResourceQuota of the namespace is used up (its quota admission
// answers 403 "exceeded quota: NAME, requested: ..., used: ..., limited:
// ..."), rather than because the gateway lacks a permission.
func isNamespaceQuotaRefusal(err error) bool {
	return apierrors.IsForbidden(err) && strings.Contains(apiMessage(err), "exceeded quota")
}

// namespaceQuotaError explains that refusal. Nobody can create a key in
// the console until an administrator makes room: revoking does not, since a
// revoked APIKey still counts until it is deleted.
func (c *Console) namespaceQuotaError(k *gatewayv1alpha1.APIKey, err error) *apiError {
	c.log.Warn("API server refused a console key: the console namespace's ResourceQuota is used up", "namespace", k.Namespace, "error", err)
	detail := apiMessage(err)
	if i := strings.Index(detail, "exceeded quota"); i >= 0 {
		detail = detail[i:] // without the object's name, which the user never chose
	}
	return &apiError{http.StatusForbidden, "namespace_quota_exceeded", fmt.Sprintf(
		"The key could not be created: the console's namespace %q already holds as many API keys as its ResourceQuota allows (%s). Ask your administrator to delete keys nobody uses, or to raise the quota.", k.Namespace, detail)}
}
