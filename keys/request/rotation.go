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
// for grace, its reveal Secret written where in says ("" for next to the
// APIKey; the console asks for RevealInSystemNamespace, which only it may).
// requestedAt is now in whole seconds, but later than any rotation
// before: the API server keeps it moving forward.
func NewRotation(key *gatewayv1alpha1.APIKey, now time.Time, grace time.Duration, publicKey string, in gatewayv1alpha1.RevealLocation) (Rotation, error) {
	at := metav1.NewTime(now.UTC().Truncate(time.Second))
	if prev := key.Spec.Rotation; prev != nil && !at.After(prev.RequestedAt.Time) {
		at = metav1.NewTime(prev.RequestedAt.Add(time.Second))
	}
	rotation := map[string]any{
		"requestedAt": at, "gracePeriod": metav1.Duration{Duration: grace}, "revealPublicKey": publicKey,
		// A merge patch keeps what it leaves out: the last rotation's
		// revealIn would stay, and the API server refuses it from anyone
		// but the console.
		"revealIn": nil,
	}
	if in != "" && in != gatewayv1alpha1.RevealInKeyNamespace {
		rotation["revealIn"] = in
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": map[string]any{"uid": key.UID, "resourceVersion": key.ResourceVersion},
		"spec":     map[string]any{"rotation": rotation},
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
