package v1alpha1

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Rotation asks for a new key for the same APIKey (docs/design.md, section 13):
// same name, same UID, a new key ID and secret, revealed once like the
// first, sealed to revealPublicKey. The old key keeps working until
// gracePeriod has passed. Set by the owner (it carries the public key the
// new key is sealed to: whoever sets it receives the key); a later
// requestedAt rotates again.
type Rotation struct {
	// requestedAt identifies the rotation; it only moves forward.
	RequestedAt metav1.Time `json:"requestedAt"`

	// gracePeriod is how long the old key keeps working after the new one
	// is issued, e.g. "24h"; "0s" ends it at once. Default 24h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	GracePeriod *metav1.Duration `json:"gracePeriod,omitempty"`

	// revealPublicKey is the public key the new key is sealed to (as
	// spec.revealPublicKey for the first key), made fresh for this
	// rotation by `kubectl apikey rotate` or the console. Required in a new
	// rotation; the manager removes it once the rotation is done and its
	// key revealed (or its reveal window over), as it does
	// spec.revealPublicKey.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+/]+={0,2}$`
	RevealPublicKey string `json:"revealPublicKey,omitempty"`

	// revealIn is where the manager writes the reveal Secret of the new
	// key: KeyNamespace (the default) next to the APIKey, or
	// SystemNamespace, the manager's own namespace, where the console
	// reads it (the gateway may read Secrets only there). The Secret's
	// name and namespace are derived by the manager from the APIKey, never
	// taken from the request, and the key in it is sealed to
	// revealPublicKey wherever it lies. Only the gateway's service account
	// may ask for SystemNamespace (config/policies/owner-validate.yaml).
	// +optional
	RevealIn RevealLocation `json:"revealIn,omitempty"`
}

// RevealLocation says in which namespace the reveal Secret of a rotated
// key is written.
// +kubebuilder:validation:Enum=KeyNamespace;SystemNamespace
type RevealLocation string

const (
	// RevealInKeyNamespace: next to the APIKey (the default).
	RevealInKeyNamespace RevealLocation = "KeyNamespace"
	// RevealInSystemNamespace: in the manager's system namespace, named
	// after the APIKey's UID (SystemRevealSecretName), for the console.
	RevealInSystemNamespace RevealLocation = "SystemNamespace"
)

// SystemRevealSecretName is the name of the reveal Secret the manager
// writes in the system namespace for a rotation with revealIn
// SystemNamespace: ak-<APIKey UID>-reveal. The UID makes it unique across
// namespaces and incarnations, so one APIKey's rotation can never write
// over another's reveal; it cannot be a hash Secret's name (those end in
// the UID or in hex).
func SystemRevealSecretName(apiKeyUID string) string { return HashSecretName(apiKeyUID) + "-reveal" }

// DefaultRotationGracePeriod is the grace period of a rotation that names
// none.
const DefaultRotationGracePeriod = "24h"

// PreviousKey is the key a rotation replaced, while it still works.
type PreviousKey struct {
	// prefix is the old key's prefix ("cvk_" and its key ID).
	Prefix string `json:"prefix"`
	// expiresAt is when the grace period ends and the old key stops
	// working (earlier if the APIKey is revoked or expires).
	ExpiresAt metav1.Time `json:"expiresAt"`
	// lastUsedAt is when a gateway last authenticated a request with the
	// old key, so the owner can see when its users moved to the new one.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`
	// hashSecretRef points at the old key's hash, deleted when the grace
	// period ends.
	// +optional
	HashSecretRef *SecretReference `json:"hashSecretRef,omitempty"`
}

// ExpiryWarning names how long before its expiry a key was last warned
// about.
// +kubebuilder:validation:Enum="7d";"1d";"1h"
type ExpiryWarning string

const (
	ExpiryWarning7d ExpiryWarning = "7d"
	ExpiryWarning1d ExpiryWarning = "1d"
	ExpiryWarning1h ExpiryWarning = "1h"
)

// RotatedHashSecretName is the name of the hash Secret of a key issued by
// a rotation: ak-<APIKey UID>-<key ID in hex>. During a grace period an
// APIKey has two hash Secrets, so the name carries the key ID (in hex:
// Secret names are lowercase and key IDs are not).
func RotatedHashSecretName(apiKeyUID, keyID string) string {
	return HashSecretName(apiKeyUID) + "-" + hex.EncodeToString([]byte(keyID))
}

// RevealKeyFingerprint is the fingerprint status.reveal keeps of the
// public key a reveal is sealed to: "SHA256:" and the unpadded base64 of
// the SHA-256 of the key's bytes, as ssh writes one. A value that is not
// base64 is fingerprinted as text (the CRD admits only base64).
func RevealKeyFingerprint(publicKey string) string {
	raw, err := base64.StdEncoding.DecodeString(publicKey)
	if err != nil {
		raw = []byte(publicKey)
	}
	sum := sha256.Sum256(raw)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
