package testenv

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

// RevealKey is the private key that test fixtures seal their keys to, as
// `kubectl apikey create` seals a key to one it makes. One per test process
// is enough: the sealed bytes bind each APIKey's UID anyway.
var RevealKey = sync.OnceValue(func() *seal.PrivateKey {
	p, err := seal.NewPrivateKey()
	if err != nil {
		panic(err)
	}
	return p
})

// SealToTests sets k's revealPublicKey to RevealKey's, so the controller
// issues it at once. Use it as a mutate function of a new APIKey.
func SealToTests(k *gatewayv1alpha1.APIKey) {
	k.Spec.RevealPublicKey = RevealKey().PublicKey()
}

// Reveal consumes the reveal of a key sealed with SealToTests.
func Reveal(ctx context.Context, c client.Client, k *gatewayv1alpha1.APIKey) (keys.Key, error) {
	return reveal.Consume(ctx, c, k, RevealKey())
}

// RequestRevealAs sets the revealPublicKey of APIKey ns/name to
// RevealKey's as user (its owner: the admission policy lets nobody else),
// as that user's `kubectl apikey reveal` would: bound to the editor role in
// ns, through impersonation by the cluster admin.
func (e *Env) RequestRevealAs(ctx context.Context, user, ns, name string) error {
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "apikey-editor-" + strings.NewReplacer("@", "-at-", ":", "-").Replace(user)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "codevector-apikey-editor"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if err := e.Client.Create(ctx, binding); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("binding %s to the editor role in %s: %w", user, ns, err)
	}
	c, err := e.ClientAs(user)
	if err != nil {
		return err
	}
	k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	patch := fmt.Appendf(nil, `{"spec":{"revealPublicKey":%q}}`, RevealKey().PublicKey())
	// RBAC caches a new binding for a moment; retry a refusal briefly.
	for range 50 {
		if err = c.Patch(ctx, k, client.RawPatch(types.MergePatchType, patch)); err == nil || !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "cannot patch") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return fmt.Errorf("%s asking for the key of APIKey %s/%s: %w", user, ns, name, err)
	}
	return nil
}

// ClientAs is a client that acts as user, in groups, through impersonation
// by the cluster admin: what that user's kubectl would be, for tests that
// need a user's identity in admission decisions.
func (e *Env) ClientAs(user string, groups ...string) (client.Client, error) {
	cfg := rest.CopyConfig(e.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return client.New(cfg, client.Options{Scheme: e.Client.Scheme()})
}
