package commands

import (
	"os"
	"sync"
	"testing"

	"github.com/codevector/codevector/internal/kubectlplugin"
	"github.com/codevector/codevector/internal/testenv"
)

// The dev-mode tests run the codevector binary as a process: it is built
// at most once, and only by the tests that need it.
var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds codevector (and its kubectl-apikey and
// kubectl_complete-apikey links) once and returns the directory that holds
// them.
func binaries(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() { binDir, binErr = testenv.BuildBinary(kubectlplugin.Name, kubectlplugin.CompletionName) })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binDir
}
