package kubectlplugin

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/codevector/codevector/internal/testenv"
)

// The package's tests need two expensive things, each started at most once
// and only by the tests that need it: a control plane (the keys CLI tests)
// and the codevector binary (the completion test runs it through bash).
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

// binaries builds codevector and its kubectl-apikey and
// kubectl_complete-apikey links once, and returns the directory that holds
// them.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() { binDir, binErr = testenv.BuildBinary(Name, CompletionName) })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}
