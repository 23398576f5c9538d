package v1alpha1

import (
	"strings"
	"testing"
)

func TestExplainMissingGuardrails(t *testing.T) {
	// The API server's words when a binding's params are missing and its
	// parameterNotFoundAction is Deny (the end-to-end tests in controllers
	// meet the real thing).
	missing := `apikeys.gateway.codevector.io "laptop" is forbidden: ValidatingAdmissionPolicy 'apikey-guardrails.gateway.codevector.io' ` +
		"with binding 'apikey-guardrails.team-a' denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction"
	got, ok := ExplainMissingGuardrails(missing, "team-a")
	if !ok {
		t.Fatal("the missing-ConfigMap refusal was not recognised")
	}
	for _, want := range []string{"new keys in namespace team-a are refused", "ValidatingAdmissionPolicyBinding apikey-guardrails.team-a", "ConfigMap in namespace codevector-system is missing", "Only a cluster admin can fix this"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q does not say %q", got, want)
		}
	}
	for _, other := range []string{
		`apikeys.gateway.codevector.io "laptop" is forbidden: ValidatingAdmissionPolicy 'apikey-guardrails.gateway.codevector.io' with binding 'apikey-guardrails.team-a' denied request: spec.limits.requestsPerMinute must be at most 600`,
		`apikeys.gateway.codevector.io "laptop" is forbidden: ValidatingAdmissionPolicy 'other' with binding 'x' denied request: failed to configure binding: no params found for policy binding with` + " `Deny` parameterNotFoundAction",
		`apikeys.gateway.codevector.io is forbidden: User "eve" cannot create resource "apikeys"`,
	} {
		if got, ok := ExplainMissingGuardrails(other, "team-a"); ok {
			t.Errorf("%q explained as a missing ConfigMap: %q", other, got)
		}
	}
}
