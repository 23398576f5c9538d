package v1alpha1

import (
	"fmt"
	"strings"
)

// GuardrailsPolicy is the ValidatingAdmissionPolicy that holds new keys to
// their namespace's guardrails (config/policies/guardrails.yaml).
const GuardrailsPolicy = "apikey-guardrails.gateway.codevector.io"

// ExplainMissingGuardrails turns the API server's refusal of a key in a
// namespace whose guardrails binding names a ConfigMap that is gone (the
// binding's parameterNotFoundAction: Deny, in the API server's generic
// words) into what happened and who can fix it. ok is false for any other
// message.
func ExplainMissingGuardrails(message, namespace string) (explained string, ok bool) {
	prefix := "ValidatingAdmissionPolicy '" + GuardrailsPolicy + "' with binding '"
	_, rest, found := strings.Cut(message, prefix)
	if !found || !strings.Contains(rest, "no params found") {
		return "", false
	}
	binding, _, _ := strings.Cut(rest, "'")
	return fmt.Sprintf("new keys in namespace %s are refused: the namespace has guardrails (ValidatingAdmissionPolicyBinding %s), "+
		"but their ConfigMap in namespace %s is missing. Only a cluster admin can fix this: restore the ConfigMap that the binding's "+
		"spec.paramRef names, or delete the namespace's guardrail bindings to lift the guardrails",
		namespace, binding, DefaultSystemNamespace), true
}
