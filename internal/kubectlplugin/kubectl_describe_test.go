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
		// The manager records Revealed when it sees the reveal Secret go.
		var out string
		testenv.Eventually(t, 15*time.Second, func() error {
			out = describe(t, tc.kubeconfig, tc.name)
			for _, reason := range []string{"Issued", "Revealed"} {
				if !regexp.MustCompile(`(?m)^\s+Normal\s+` + reason + `\s`).MatchString(out) {
					return fmt.Errorf("%s: kubectl describe apikey %s lists no %s event:\n%s", tc.who, tc.name, reason, out)
				}
			}
			return nil
		})
	}
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
