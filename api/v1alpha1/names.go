package v1alpha1

// Names shared by the controller, the gateway and the CLI. They are part of
// the contract between components, so they live next to the types.
const (
	// RevealSecretType marks the one-shot Secret that carries the new key,
	// sealed to its owner, in the APIKey's namespace.
	RevealSecretType = "gateway.codevector.io/apikey-reveal"
	// RevealSecretSealedKey is the data key of the sealed key in a reveal
	// Secret: what hpke.Seal returned (keys/seal).
	RevealSecretSealedKey = "sealedKey"
	// RevealSecretPlainKey is the data key of the plaintext in a reveal
	// Secret written by a manager running with --reveal-mode=plain, for a
	// key that has no revealPublicKey.
	RevealSecretPlainKey = "apiKey"

	// HashSecretType marks the Secret in the system namespace that holds
	// the argon2id hash of a key.
	HashSecretType = "gateway.codevector.io/apikey-hash"
	// HashSecretKey is the data key of the PHC string in a hash Secret.
	HashSecretKey = "hash"
	// HashSecretQuickCheckKey is the data key of the key's 16-bit quick
	// check (keys.QuickCheck): 4 hex digits that let gateways turn
	// away almost every wrong secret before argon2.
	HashSecretQuickCheckKey = "quickCheck"

	// LabelManagedBy is set on every Secret the controller writes, so that
	// caches can select exactly those Secrets.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is the value of LabelManagedBy.
	ManagedByValue = "codevector"
	// MetricsNamespace begins the name of every series the manager and
	// the gateways export: codevector_manager_*, codevector_gateway_*.
	MetricsNamespace = "codevector"
	// LabelKeyID carries the key ID on a hash Secret (for uniqueness checks
	// and the gateway's index).
	LabelKeyID = "gateway.codevector.io/key-id"
	// LabelAPIKeyNamespace and LabelAPIKeyName name the APIKey a hash
	// Secret belongs to (owner references cannot cross namespaces).
	LabelAPIKeyNamespace = "gateway.codevector.io/apikey-namespace"
	LabelAPIKeyName      = "gateway.codevector.io/apikey-name"
	// LabelAPIKeyUID ties a hash Secret to one incarnation of the APIKey.
	LabelAPIKeyUID = "gateway.codevector.io/apikey-uid"

	// Finalizer lets the controller delete the hash Secret in the system
	// namespace before the APIKey goes away.
	Finalizer = "gateway.codevector.io/hash-secret"

	// ConditionReady is True while the key authenticates requests.
	ConditionReady = "Ready"
	// ReasonAwaitingRevealKey: the key waits for its owner to supply the
	// public key it will be sealed to (`kubectl apikey reveal NAME`).
	ReasonAwaitingRevealKey = "AwaitingRevealKey"

	// DefaultSystemNamespace holds hash Secrets and console-created keys.
	DefaultSystemNamespace = "codevector-system"
	// DefaultAdminGroup may create keys for other owners and sees everyone's
	// key metadata in the console.
	DefaultAdminGroup = "codevector:admins"
)

// AnnotationCreatedBy records, on every APIKey, the user who created it.
// An admission policy sets it at creation, over whatever the request said,
// and refuses any change afterwards (config/policies), so the controller
// can tell a key its owner created from one made for them by someone else.
const AnnotationCreatedBy = "gateway.codevector.io/created-by"

// RevealSecretName is the name the controller gives the reveal Secret of
// the APIKey `name` when it is free. When someone else's Secret holds it,
// the controller generates another (RevealSecretName + "-" + a suffix):
// readers take the name from status.reveal.secretName (RevealSecretNameOf).
func RevealSecretName(apiKeyName string) string { return apiKeyName + "-apikey-reveal" }

// RevealSecretNameOf is the name of the reveal Secret of k's current key:
// the one status.reveal records, else RevealSecretName.
func RevealSecretNameOf(k *APIKey) string {
	if r := k.Status.Reveal; r != nil && r.SecretName != "" {
		return r.SecretName
	}
	return RevealSecretName(k.Name)
}

// RevealSecretNamespaceOf is the namespace of the reveal Secret of k's
// current key: the one status.reveal records, else k's own.
func RevealSecretNamespaceOf(k *APIKey) string {
	if r := k.Status.Reveal; r != nil && r.SecretNamespace != "" {
		return r.SecretNamespace
	}
	return k.Namespace
}

// HashSecretName is the name of the hash Secret of the APIKey with that UID.
// The UID (not the name) makes a re-created APIKey of the same name a
// different key with a different Secret.
func HashSecretName(apiKeyUID string) string { return "ak-" + apiKeyUID }
