package commands

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/codevector/codevector/internal/testenv"
)

// The package's tests need two expensive things, each started at most once
// and only by the tests that need it: a control plane (the keys CLI tests)
// and the codevector binary (the dev-mode test runs it as a process).
var (
	envOnce sync.Once
	env     *testenv.Env
	envErr  error

	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if env != nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping control plane:", err)
		}
	}
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// sharedEnv is the package's control plane, with CodeVector installed.
func sharedEnv(t testing.TB) *testenv.Env {
	t.Helper()
	envOnce.Do(func() { env, envErr = testenv.Start(context.Background()) })
	if envErr != nil {
		t.Fatal(envErr)
	}
	return env
}

// binaries builds codevector (and its kubectl-apikey and
// kubectl_complete-apikey links) once and
// returns the directory that holds both.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		root, err := testenv.RepoRoot()
		if err != nil {
			binErr = err
			return
		}
		if binDir, binErr = os.MkdirTemp("", "codevector-bin-"); binErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, "codevector"), ".")
		// The go command's defaults, as for the test binaries: most of
		// what this build needs is then already in the build cache.
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		// The links make build makes: the kubectl plugin and its completion.
		for _, link := range []string{kubectlPlugin, kubectlPluginCompletion} {
			if binErr = os.Symlink("codevector", filepath.Join(binDir, link)); binErr != nil {
				return
			}
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}
