// Package request is the client side of the key-request protocol that the
// console and the CLI share: ask the controller for a new key of an
// APIKey, know the answer when it comes, and (keys/reveal) consume the
// sealed reveal. Who may ask is keys/access's rule.
package request

import (
	"encoding/json"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// Rotation is one request for a new key of an APIKey.
type Rotation struct {
	// At is spec.rotation.requestedAt, which status.rotatedAt names once
	// the controller has carried the rotation out.
	At metav1.Time
	// Patch sets spec.rotation on exactly the APIKey read: its UID and
	// resourceVersion are preconditions, so the rotation is of the key
	// found Active (a conflict means: read again and retry).
	Patch client.Patch
}

// NewRotation asks for a new key of key, sealed to publicKey (the public
// half of a key pair the asker holds in memory), the old key working on
// for grace. requestedAt is now in whole seconds, but later than any
// rotation before: the API server keeps it moving forward.
func NewRotation(key *gatewayv1alpha1.APIKey, now time.Time, grace time.Duration, publicKey string) (Rotation, error) {
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	if prev := key.Spec.Rotation; prev != nil && !at.After(prev.RequestedAt.Time) {
		at = metav1.NewTime(prev.RequestedAt.Add(time.Second))
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": key.UID, "resourceVersion": key.ResourceVersion},
		"spec": map[string]any{"rotation": gatewayv1alpha1.Rotation{
			RequestedAt: at, GracePeriod: &metav1.Duration{Duration: grace}, RevealPublicKey: publicKey,
		}},
	})
	if err != nil {
		return Rotation{}, fmt.Errorf("encoding the rotation of APIKey %s/%s: %w", key.Namespace, key.Name, err)
	}
	return Rotation{At: at, Patch: client.RawPatch(types.MergePatchType, patch)}, nil
}

// Done tells whether k carries out this rotation: Active, with
// status.rotatedAt naming it. Its reveal then holds the new key.
func (r Rotation) Done(k *gatewayv1alpha1.APIKey) bool {
	return k.Status.Phase == gatewayv1alpha1.PhaseActive && k.Status.RotatedAt != nil && k.Status.RotatedAt.Equal(&r.At)
}
