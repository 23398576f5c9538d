package testenv

import (
	"context"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/keys"
	"github.com/codevector/codevector/internal/reveal"
	"github.com/codevector/codevector/internal/seal"
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
