package controllers_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// kubectl runs the real kubectl on this machine against the test API server.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	out, err := exec.Command("kubectl", append([]string{"--kubeconfig", kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func TestKubectlGetAPIKeysColumns(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	kc := env.KubeconfigFor(t, "kubectl-admin", "system:masters")
	manifest := filepath.Join(t.TempDir(), "key.yaml")
	if err := os.WriteFile(manifest, []byte(`apiVersion: gateway.codevector.io/v1alpha1
kind: APIKey
metadata:
  name: laptop
spec:
  displayName: "Alice's laptop"
  owner: kubectl-admin
`), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl(t, kc, "apply", "-n", ns, "-f", manifest)
	// Applied without a public key, the key waits for its owner to ask
	// for it, and says so.
	env.WaitForPhase(t, ns, "laptop", gatewayv1alpha1.PhasePending, 10*time.Second)
	if out := kubectl(t, kc, "get", "apikeys", "laptop", "-n", ns); !regexp.MustCompile(`(?m)^laptop\s+Pending\s`).MatchString(out) {
		t.Errorf("a key awaiting its reveal key:\n%s", out)
	}
	if out := kubectl(t, kc, "describe", "apikey", "laptop", "-n", ns); !strings.Contains(out, gatewayv1alpha1.ReasonAwaitingRevealKey) || !strings.Contains(out, "kubectl apikey reveal laptop") {
		t.Errorf("kubectl describe does not say how to receive the key:\n%s", out)
	}
	kubectl(t, kc, "patch", "apikey", "laptop", "-n", ns, "--type", "merge", "-p", `{"spec":{"revealPublicKey":"`+testenv.RevealKey().PublicKey()+`"}}`)
	k := env.WaitForPhase(t, ns, "laptop", gatewayv1alpha1.PhaseActive, 10*time.Second)

	out := kubectl(t, kc, "get", "apikeys", "laptop", "-n", ns)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("kubectl get apikeys printed %d lines, want header + 1:\n%s", len(lines), out)
	}
	if got := strings.Fields(lines[0]); strings.Join(got, " ") != "NAME PREFIX STATUS LAST USED EXPIRES USAGE AGE" {
		t.Errorf("header = %q, want NAME PREFIX STATUS LAST USED EXPIRES USAGE AGE", lines[0])
	}
	row := regexp.MustCompile(`^laptop\s+` + regexp.QuoteMeta(k.Status.Prefix) + `\s+Active\s+\d+s$`)
	if !row.MatchString(lines[1]) {
		t.Errorf("row = %q, want name, prefix %s, Active, no last use, no expiry, no usage, age", lines[1], k.Status.Prefix)
	}

	// A future expiry prints as a time, not as kubectl's "<invalid>" age.
	create(t, newKey(ns, "ci", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: 720 * time.Hour} }))
	ci := env.WaitForPhase(t, ns, "ci", gatewayv1alpha1.PhaseActive, 10*time.Second)
	expires := ci.Status.ExpiresAt.UTC().Format(time.RFC3339)
	if out := kubectl(t, kc, "get", "apikeys", "ci", "-n", ns); !strings.Contains(out, expires) || strings.Contains(out, "<invalid>") {
		t.Errorf("EXPIRES column for a key expiring at %s:\n%s", expires, out)
	}

	wide := kubectl(t, kc, "get", "ak", "-n", ns, "-o", "wide")
	if !strings.Contains(wide, "OWNER") || !strings.Contains(wide, "DISPLAY NAME") || !strings.Contains(wide, "Alice's laptop") || !strings.Contains(wide, "kubectl-admin") {
		t.Errorf("kubectl get ak -o wide lacks OWNER/DISPLAY NAME:\n%s", wide)
	}
	// The category lists it too, and the owner field selector works in kubectl.
	if out := kubectl(t, kc, "get", "codevector", "-n", ns); !strings.Contains(out, "laptop") {
		t.Errorf("kubectl get codevector does not list the key:\n%s", out)
	}
	if out := kubectl(t, kc, "get", "apikeys", "-n", ns, "--field-selector", "spec.owner=someone-else"); strings.Contains(out, "laptop") {
		t.Errorf("field selector spec.owner=someone-else still lists the key:\n%s", out)
	}
}
