package main

import (
	"bytes"
	"strings"
	"testing"
)

// chartDir is charts/codevector, seen from this module.
const chartDir = "../../charts/codevector"

func runTool(args ...string) (string, error) {
	var out bytes.Buffer
	err := run(args, &out)
	return out.String(), err
}

// TestLintStrict is `helm lint --strict` of the chart: with its defaults,
// and with every optional part switched on.
func TestLintStrict(t *testing.T) {
	for _, sets := range [][]string{
		nil,
		{"--set", "monitoring.serviceMonitor.enabled=true", "--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.grafanaDashboard.enabled=true"},
		{"--set", "console.auth=oidc", "--set", "console.oidc.issuerURL=https://dex.example.com", "--set", "console.oidc.clientID=codevector",
			"--set", "console.oidc.redirectURL=https://gateway.example.com/oauth2/callback"},
		{"--set", "gateway.peers.enabled=false", "--set", "gateway.replicas=1", "--set", "gateway.podDisruptionBudget.enabled=false"},
	} {
		out, err := runTool(append([]string{"lint", chartDir}, sets...)...)
		if err != nil {
			t.Errorf("lint --strict %v: %v\n%s", sets, err, out)
		}
	}
}

// TestSchemaRefusesWrongValues: values.schema.json types every value, so a
// typo or a wrong type fails before anything reaches the cluster, naming
// the value.
func TestSchemaRefusesWrongValues(t *testing.T) {
	for _, tc := range []struct {
		set  string
		want []string
	}{
		{"gateway.replicas=many", []string{"/gateway/replicas", "integer"}},
		{"gateway.replicas=0", []string{"/gateway/replicas", "minimum"}},
		{"gatway.replicas=3", []string{"gatway"}},
		{"image.tag=latest", []string{"/image/tag", "latest"}},
		{"gateway.imageTag=latest", []string{"/gateway/imageTag", "latest"}},
		{"image.digest=sha256:abc", []string{"/image/digest"}},
		{"console.auth=magic", []string{"/console/auth", "header", "oidc"}},
		{"gateway.peers.enabled=yes", []string{"/gateway/peers/enabled", "boolean"}},
		{"manager.resources.limits.memory=lots", []string{"/manager/resources/limits/memory"}},
		{"monitoring.serviceMonitor.interval=often", []string{"/monitoring/serviceMonitor/interval"}},
		{"securityContext.allowPrivilegeEscalation=true", []string{"/securityContext/allowPrivilegeEscalation"}},
		{"gateway.providers.openai.maxOutputTokens.gpt-5=lots", []string{"/gateway/providers/openai/maxOutputTokens/gpt-5", "integer"}},
		{"gateway.providers.openai.baseUrl=https://example.com", []string{"baseUrl"}},
	} {
		for _, cmd := range []string{"template", "lint"} {
			out, err := runTool(cmd, chartDir, "--set", tc.set)
			if err == nil {
				t.Errorf("%s --set %s succeeded, want a schema error", cmd, tc.set)
				continue
			}
			msg := err.Error() + out
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("%s --set %s: error does not mention %q:\n%s", cmd, tc.set, w, msg)
				}
			}
		}
	}
}

// TestTemplateRefusesOtherNamespaces: the policies name the components'
// service accounts in codevector-system.
func TestTemplateRefusesOtherNamespaces(t *testing.T) {
	_, err := runTool("template", chartDir, "--namespace", "default")
	if err == nil || !strings.Contains(err.Error(), "codevector-system") {
		t.Errorf("template --namespace default: err = %v, want a failure naming codevector-system", err)
	}
	_, err = runTool("template", chartDir, "--set", "console.auth=oidc")
	if err == nil || !strings.Contains(err.Error(), "console.oidc.issuerURL") {
		t.Errorf("template with console.auth=oidc and no issuer: err = %v, want a failure naming console.oidc.issuerURL", err)
	}
}
