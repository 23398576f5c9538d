package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// APIKeySpec is what a user asks for: a key, optionally named, optionally
// expiring, and whether it has been revoked.
//
// Expiry and ownership are fixed at creation. The CEL rules below are
// enforced by the API server, so no client (console, CLI, kubectl) can get
// around them.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.expiresAt) && has(self.ttl))",message="set either expiresAt or ttl, not both"
// +kubebuilder:validation:XValidation:rule="has(self.owner) == has(oldSelf.owner) && (!has(self.owner) || self.owner == oldSelf.owner)",message="owner is immutable once set"
// +kubebuilder:validation:XValidation:rule="has(self.expiresAt) == has(oldSelf.expiresAt) && (!has(self.expiresAt) || self.expiresAt == oldSelf.expiresAt)",message="expiresAt is immutable: create a new key instead"
// +kubebuilder:validation:XValidation:rule="has(self.ttl) == has(oldSelf.ttl) && (!has(self.ttl) || self.ttl == oldSelf.ttl)",message="ttl is immutable: create a new key instead"
// +kubebuilder:validation:XValidation:rule="!(has(oldSelf.revoked) && oldSelf.revoked) || (has(self.revoked) && self.revoked)",message="revocation cannot be undone: create a new key instead"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revealPublicKey) || !has(self.revealPublicKey) || self.revealPublicKey == oldSelf.revealPublicKey",message="revealPublicKey can be set once and never changed: the key is sealed to it"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.rotation) || (has(self.rotation) && (self.rotation == oldSelf.rotation || timestamp(self.rotation.requestedAt) > timestamp(oldSelf.rotation.requestedAt) || (timestamp(self.rotation.requestedAt) == timestamp(oldSelf.rotation.requestedAt) && !has(self.rotation.revealPublicKey))))",message="spec.rotation cannot be removed or changed, only replaced by one with a later requestedAt (which rotates again)"
// +kubebuilder:validation:XValidation:rule="!has(self.rotation) || has(self.rotation.revealPublicKey) || (oldSelf.hasValue() && has(oldSelf.value().rotation) && timestamp(self.rotation.requestedAt) == timestamp(oldSelf.value().rotation.requestedAt))",message="spec.rotation needs a revealPublicKey: the new key is sealed to it",optionalOldSelf=true
type APIKeySpec struct {
	// displayName is a human-friendly label shown in the console and in
	// `kubectl get apikeys -o wide`. The console shows metadata.name when it
	// is empty.
	// +optional
	// +kubebuilder:validation:MaxLength=128
	DisplayName string `json:"displayName,omitempty"`

	// owner is the user the key belongs to. An admission policy defaults it
	// to the creating user and only members of the admin group (or the
	// gateway's console) may set someone else. Immutable once set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Owner string `json:"owner,omitempty"`

	// expiresAt is the absolute time after which the key stops working:
	// a date ("2027-01-31", the start of that day in UTC) or an RFC 3339
	// time ("2027-01-31T09:00:00Z"), as kubectl apikey create --expires
	// takes it, stored as written. Mutually exclusive with ttl. A time
	// already in the past at creation makes the key Expired at once: no key
	// is ever generated for it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}$') ? !format.date().validate(self).hasValue() : self.matches('^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$') && !format.datetime().validate(self).hasValue()",message="expiresAt must be a date such as 2027-01-31 (the start of that day, UTC) or an RFC 3339 time such as 2027-01-31T09:00:00Z"
	ExpiresAt *Expiry `json:"expiresAt,omitempty"`

	// ttl is the lifetime of the key counted from the APIKey's creation:
	// days or weeks ("30d", "2w") or a duration ("12h", "90m", "1h30m"),
	// as kubectl apikey create --expires takes it. Mutually exclusive with
	// expiresAt.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]{1,4}[dw]|([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+)$')",message="ttl must be a lifetime such as 30d, 2w, 12h or 90m (days, weeks, hours, minutes; or a duration like 1h30m)"
	TTL *Lifetime `json:"ttl,omitempty"`

	// revoked, once true, makes every later gateway request with this key
	// fail with 401. It cannot be set back to false.
	// +optional
	Revoked bool `json:"revoked,omitempty"`

	// revealPublicKey is the public key the new key is sealed to (standard
	// base64 of an HPKE ML-KEM-768+X25519 public key). Only the holder of
	// its private key can read the key: `kubectl apikey create|reveal` and
	// the console generate the pair in memory and set this field. The
	// controller issues no key until it is set (phase Pending, reason
	// AwaitingRevealKey), unless the manager runs with --reveal-mode=plain.
	// It can go from unset to set once and never change; an admission
	// policy lets only the owner (or the console, for a signed-in owner)
	// set it. Once the key sealed to it has been revealed (or its reveal
	// window has ended) it has served its purpose: the manager removes it,
	// and status.reveal.publicKeyFingerprint keeps a short fingerprint of it
	// (docs/design.md, section 6).
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern=`^[A-Za-z0-9+/]+={0,2}$`
	RevealPublicKey string `json:"revealPublicKey,omitempty"`

	// models, when set, is the only models the key may use (globs such as
	// "gpt-4o*"): requests for any other get 403 model_not_allowed, and
	// model listings through the gateway show only these. Set by admins.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=32
	Models []ModelGlob `json:"models,omitempty"`

	// limits bound the key's request and token rates and its concurrent
	// requests, across all gateway replicas. Set by admins.
	// +optional
	Limits *Limits `json:"limits,omitempty"`

	// budget caps the key's spend per period in tokens or US dollars.
	// Set by admins.
	// +optional
	Budget *Budget `json:"budget,omitempty"`

	// rotation, when set to a later requestedAt, makes the controller issue
	// a new key for this APIKey and keep the old one working for the grace
	// period. Set by the owner: `kubectl apikey rotate NAME`.
	// +optional
	Rotation *Rotation `json:"rotation,omitempty"`
}

// Phase is where an APIKey is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Revoked;Expired;Failed
type Phase string

const (
	// PhasePending: the controller has not generated the key yet.
	PhasePending Phase = "Pending"
	// PhaseActive: the key authenticates gateway requests.
	PhaseActive Phase = "Active"
	// PhaseRevoked: spec.revoked was set; the hash is gone. Final.
	PhaseRevoked Phase = "Revoked"
	// PhaseExpired: the expiry passed; the hash is gone. Final.
	PhaseExpired Phase = "Expired"
	// PhaseFailed: the key cannot be served (for example its hash Secret
	// was deleted by hand); see the Ready condition. Create a new key.
	PhaseFailed Phase = "Failed"
)

// RevealState tells whether the one-time copy of the key is still waiting
// to be read.
// +kubebuilder:validation:Enum=Pending;Consumed;Expired
type RevealState string

const (
	// RevealPending: the reveal Secret exists and can be consumed once.
	RevealPending RevealState = "Pending"
	// RevealConsumed: someone read the key; nobody can read it again.
	RevealConsumed RevealState = "Consumed"
	// RevealExpired: nobody read the key within the reveal window (or the
	// key stopped being usable first) and the controller deleted it.
	RevealExpired RevealState = "Expired"
)

// SecretReference names a Secret in a given namespace.
type SecretReference struct {
	// namespace of the Secret.
	Namespace string `json:"namespace"`
	// name of the Secret.
	Name string `json:"name"`
}

// RevealStatus describes the one-shot Secret that carries the plaintext key.
type RevealStatus struct {
	// secretName is the reveal Secret, in secretNamespace.
	SecretName string `json:"secretName"`
	// secretNamespace is the reveal Secret's namespace: empty for the
	// APIKey's own, the system namespace for a rotation the console asked
	// for (spec.rotation.revealIn).
	// +optional
	SecretNamespace string `json:"secretNamespace,omitempty"`
	// expiresAt is when the controller deletes the reveal Secret if nobody
	// has consumed it.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
	// state is Pending, Consumed or Expired.
	State RevealState `json:"state"`
	// secretUID is the UID of the reveal Secret the controller wrote.
	// Readers consume only that Secret, so one planted under the same name
	// (by anyone who may create Secrets in the namespace) is refused.
	// +optional
	SecretUID types.UID `json:"secretUID,omitempty"`
	// publicKeyFingerprint identifies the public key the reveal Secret is
	// sealed to ("SHA256:" and the unpadded base64 of its SHA-256, as ssh
	// writes fingerprints): what stays of spec.revealPublicKey (or
	// spec.rotation.revealPublicKey) once the manager removes it. Empty for
	// a key revealed in plaintext.
	// +optional
	PublicKeyFingerprint string `json:"publicKeyFingerprint,omitempty"`
}

// APIKeyStatus is what the controller (and, for lastUsedAt, the gateway)
// observed.
type APIKeyStatus struct {
	// phase is Pending, Active, Revoked, Expired or Failed.
	// +optional
	Phase Phase `json:"phase,omitempty"`

	// prefix is the first 12 characters of the key ("cvk_" and the key ID):
	// enough to recognise a key, useless to authenticate with.
	// +optional
	Prefix string `json:"prefix,omitempty"`

	// expiresAt is the resolved absolute expiry (from spec.expiresAt or
	// creation time + spec.ttl).
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// expiryWarning is the last expiry warning the controller emitted as
	// an event ("7d", "1d" or "1h" before expiresAt), so that each is
	// emitted once, across manager restarts.
	// +optional
	ExpiryWarning ExpiryWarning `json:"expiryWarning,omitempty"`

	// revokedAt is when the controller saw spec.revoked become true.
	// +optional
	RevokedAt *metav1.Time `json:"revokedAt,omitempty"`

	// lastUsedAt is when a gateway last authenticated a request with this
	// key. Written by the gateways at most once per key per flush interval,
	// so it is accurate to that interval.
	// +optional
	LastUsedAt *metav1.Time `json:"lastUsedAt,omitempty"`

	// hashSecretRef points at the Secret that holds the argon2id hash of
	// the key, in the system namespace.
	// +optional
	HashSecretRef *SecretReference `json:"hashSecretRef,omitempty"`

	// reveal tracks the one-shot Secret that carries the plaintext key.
	// +optional
	Reveal *RevealStatus `json:"reveal,omitempty"`

	// conditions: Ready is True while the key authenticates requests.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// usage is what the key spent in the current period, as the gateways
	// counted it (docs/design.md, section 12.5).
	// +optional
	Usage *Usage `json:"usage,omitempty"`

	// previous is the key the last rotation replaced, while its grace
	// period lasts.
	// +optional
	Previous *PreviousKey `json:"previous,omitempty"`

	// rotatedAt is spec.rotation.requestedAt of the last rotation the
	// controller carried out.
	// +optional
	RotatedAt *metav1.Time `json:"rotatedAt,omitempty"`

	// budget is spec.budget as `kubectl get apikeys -o wide` shows it
	// ("$50/month", "5M tokens/day"); empty without a budget.
	// +optional
	Budget string `json:"budget,omitempty"`

	// observedGeneration is the metadata.generation the status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// APIKey is a per-user key for the CodeVector gateway. The controller
// generates the key, stores only its argon2id hash and reveals the plaintext
// once through a one-shot Secret.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 239",message="name must be at most 239 characters (its reveal Secret adds a suffix)"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec.revealPublicKey) || has(self.spec.revealPublicKey) || (has(self.status) && has(self.status.reveal) && self.status.reveal.state != 'Pending')",message="spec.revealPublicKey can be removed only once the key sealed to it has been revealed or its reveal window has ended (the manager removes it then)"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.spec.revealPublicKey) || !has(self.spec.revealPublicKey) || !has(self.status) || !has(self.status.reveal)",message="spec.revealPublicKey cannot be set again: the key was issued and its reveal is over; rotate the key to receive a new one"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.spec.rotation) || !has(oldSelf.spec.rotation.revealPublicKey) || !has(self.spec.rotation) || has(self.spec.rotation.revealPublicKey) || timestamp(self.spec.rotation.requestedAt) != timestamp(oldSelf.spec.rotation.requestedAt) || (has(self.status) && has(self.status.rotatedAt) && timestamp(self.status.rotatedAt) == timestamp(self.spec.rotation.requestedAt) && has(self.status.reveal) && self.status.reveal.state != 'Pending')",message="spec.rotation.revealPublicKey can be removed only once the rotation is done and its key has been revealed or its reveal window has ended (the manager removes it then)"
// +kubebuilder:resource:shortName=ak,categories=codevector
// +kubebuilder:selectablefield:JSONPath=`.spec.owner`
// +kubebuilder:printcolumn:name="Prefix",type=string,JSONPath=`.status.prefix`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Last Used",type=date,JSONPath=`.status.lastUsedAt`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`,description="When the key stops working (UTC)"
// +kubebuilder:printcolumn:name="Usage",type=string,JSONPath=`.status.usage.summary`,description="Spent this period"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Budget",type=string,JSONPath=`.status.budget`,priority=1
// +kubebuilder:printcolumn:name="Owner",type=string,JSONPath=`.spec.owner`,priority=1
// +kubebuilder:printcolumn:name="Display Name",type=string,JSONPath=`.spec.displayName`,priority=1
type APIKey struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what the user asks for.
	Spec APIKeySpec `json:"spec,omitempty"`
	// status is what the controller observed.
	Status APIKeyStatus `json:"status,omitempty"`
}

// APIKeyList is a list of APIKeys.
//
// +kubebuilder:object:root=true
type APIKeyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []APIKey `json:"items"`
}

func init() {
	SchemeBuilder.Register(&APIKey{}, &APIKeyList{})
}

// ResolvedExpiry is the absolute expiry of the key: spec.expiresAt, or the
// creation time plus spec.ttl, or nil for a key that never expires. The
// controller and the gateway both use it, so they agree to the second.
func (k *APIKey) ResolvedExpiry() *metav1.Time {
	switch {
	case k.Spec.ExpiresAt != nil:
		t := metav1.NewTime(k.Spec.ExpiresAt.Time)
		return &t
	case k.Spec.TTL != nil:
		t := metav1.NewTime(k.CreationTimestamp.Add(k.Spec.TTL.Duration))
		return &t
	default:
		return nil
	}
}

// EffectiveStatus is what the key is at now, as every gateway enforces it:
// the controller's phase, except that a revocation, a deletion or an expiry
// the controller has not recorded yet already counts. The console, the CLI
// and the gateway's index all follow it (see StatusOf).
func (k *APIKey) EffectiveStatus(now time.Time) Phase {
	var expiresAt time.Time
	if exp := k.ResolvedExpiry(); exp != nil {
		expiresAt = exp.Time
	}
	return StatusOf(k.Spec.Revoked, k.DeletionTimestamp != nil, k.Status.Phase, expiresAt, now)
}

// StatusOf is the one rule for a key's effective status, on the few facts
// it depends on, for callers that keep those rather than the APIKey (the
// gateway's index): a revoked key, or one being deleted (gateways refuse
// it as revoked while its finalizer waits), is Revoked; a key past its
// expiry (zero expiresAt: never) is Expired; otherwise the phase, with
// empty meaning Pending.
func StatusOf(revoked, deleting bool, phase Phase, expiresAt, now time.Time) Phase {
	switch {
	case revoked, deleting, phase == PhaseRevoked:
		return PhaseRevoked
	case phase == PhaseExpired, !expiresAt.IsZero() && !now.Before(expiresAt):
		return PhaseExpired
	case phase == "":
		return PhasePending
	default:
		return phase
	}
}
