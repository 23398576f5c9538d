package kubectlplugin

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// TestKubectlDescribeAsOwner runs the machine's kubectl describe apikey as
// the key's owner, with the roles the README gives key users (the editor
// role in a namespace) and with what dev mode binds to its dev user: the
// manager's events (Issued, Revealed) are listed, not "<none>".
func TestKubectlDescribeAsOwner(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ctx := context.Background()

	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)

	// The dev user of `codevector dev`, bound as dev mode binds it.
	if err := devmode.GrantDevUser(ctx, e.Client); err != nil {
		t.Fatal(err)
	}
	u, err := e.AddUser(envtest.User{Name: console.DevUser}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dev := filepath.Join(t.TempDir(), "kubeconfig")
	if err := devmode.WriteKubeconfig(dev, u.Config(), "dev", console.DevUser, devmode.DevNamespace); err != nil {
		t.Fatal(err)
	}
	devKey := fmt.Sprintf("describe-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		_ = e.Client.Delete(context.Background(), &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: devmode.DevNamespace, Name: devKey}})
	})

	for _, tc := range []struct{ who, kubeconfig, name string }{
		{"alice (editor role)", alice, "laptop"},
		{"the dev user of dev mode", dev, devKey},
	} {
		if _, stderr, err := keysRun(tc.kubeconfig, "", "create", tc.name); err != nil {
			t.Fatalf("%s: create: %v\n%s", tc.who, err, stderr)
		}
		// The manager records Revealed when it sees the reveal Secret go,
		// and then removes the public key the key was sealed to.
		describedShort(t, tc.who, tc.kubeconfig, tc.name, "Issued", "Revealed")
	}

	// A rotation's public key goes too, once its key is revealed.
	if _, stderr, err := keysRun(alice, "", "rotate", "laptop", "--grace", "0s"); err != nil {
		t.Fatalf("rotate: %v\n%s", err, stderr)
	}
	describedShort(t, "alice after a rotation", alice, "laptop", "Issued", "Revealed", "Rotated")
}

// describedShort waits until kubectl describe apikey NAME, as the owner,
// lists the events reasons and is short: no reveal public key (1.6 KB of
// base64 each) but its fingerprint.
func describedShort(t *testing.T, who, kubeconfig, name string, reasons ...string) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		out := describe(t, kubeconfig, name)
		for _, reason := range reasons {
			if !regexp.MustCompile(`(?m)^\s+Normal\s+` + reason + `\s`).MatchString(out) {
				return fmt.Errorf("%s: kubectl describe apikey %s lists no %s event:\n%s", who, name, reason, out)
			}
		}
		if long := regexp.MustCompile(`[A-Za-z0-9+/=]{200,}`).FindString(out); long != "" || len(out) > 4096 {
			return fmt.Errorf("%s: kubectl describe apikey %s printed %d bytes, with %d characters of base64 in one piece:\n%s", who, name, len(out), len(long), out)
		}
		if !regexp.MustCompile(`(?m)^\s+Public Key Fingerprint:\s+SHA256:[A-Za-z0-9+/]{43}$`).MatchString(out) {
			return fmt.Errorf("%s: kubectl describe apikey %s shows no fingerprint of the reveal public key:\n%s", who, name, out)
		}
		return nil
	})
}

// describe runs `kubectl describe apikey NAME` with a kubeconfig.
func describe(t *testing.T, kubeconfig, name string) string {
	t.Helper()
	out, err := exec.Command("/usr/bin/kubectl", "describe", "apikey", name, "--kubeconfig", kubeconfig).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl describe apikey %s: %v\n%s", name, err, out)
	}
	return string(out)
}
