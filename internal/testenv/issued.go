package testenv

import (
	"context"
	"crypto/rand"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/keys"
)

// FakeHash is a well-formed argon2id hash with default parameters and a
// random salt and tag: the size and parse cost of a real one, for a key
// nobody will use.
func FakeHash() keys.PHC {
	salt, tag := make([]byte, 16), make([]byte, 32)
	_, _ = rand.Read(salt)
	_, _ = rand.Read(tag)
	return keys.PHC{Params: keys.DefaultParams, Salt: salt, Hash: tag}
}

// WriteIssuedKey writes what the controller leaves for an issued key whose
// reveal was consumed: the hash Secret of k (hash phc) and an Active
// status on ak, which must exist. Benchmarks use it to set up many keys
// without argon2 or a manager.
func WriteIssuedKey(ctx context.Context, c client.Client, ak *gatewayv1alpha1.APIKey, k keys.Key, phc keys.PHC) error {
	return WriteIssuedKeyIn(ctx, c, gatewayv1alpha1.DefaultSystemNamespace, ak, k, phc)
}

// WriteIssuedKeyIn is WriteIssuedKey with the hash Secret in
// systemNamespace, for a gateway of a system namespace of its own.
func WriteIssuedKeyIn(ctx context.Context, c client.Client, systemNamespace string, ak *gatewayv1alpha1.APIKey, k keys.Key, phc keys.PHC) error {
	hash := controllers.NewHashSecret(systemNamespace, ak, k, phc)
	if err := c.Create(ctx, hash); err != nil {
		return err
	}
	base := ak.DeepCopy()
	ak.Status = gatewayv1alpha1.APIKeyStatus{
		Phase:              gatewayv1alpha1.PhaseActive,
		Prefix:             k.DisplayPrefix(),
		HashSecretRef:      &gatewayv1alpha1.SecretReference{Namespace: hash.Namespace, Name: hash.Name},
		Reveal:             &gatewayv1alpha1.RevealStatus{SecretName: gatewayv1alpha1.RevealSecretName(ak.Name), State: gatewayv1alpha1.RevealConsumed},
		ObservedGeneration: ak.Generation,
		Conditions: []metav1.Condition{{Type: gatewayv1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "KeyActive",
			Message: "The key authenticates gateway requests", ObservedGeneration: ak.Generation, LastTransitionTime: metav1.Now()}},
	}
	return c.Status().Patch(ctx, ak, client.MergeFrom(base))
}

// PlantKey creates APIKey ns/name and writes what the controller leaves
// for it once issued and revealed (WriteIssuedKey): an Active key whose
// hash Secret holds phc, in three writes, without a manager or argon2.
func PlantKey(ctx context.Context, c client.Client, ns, name string, k keys.Key, phc keys.PHC) error {
	ak := &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: []string{gatewayv1alpha1.Finalizer}},
		Spec:       gatewayv1alpha1.APIKeySpec{DisplayName: "planted " + name}, // owner: defaulted to the writer
	}
	if err := c.Create(ctx, ak); err != nil {
		return fmt.Errorf("creating APIKey %s/%s: %w", ns, name, err)
	}
	return WriteIssuedKey(ctx, c, ak, k, phc)
}
