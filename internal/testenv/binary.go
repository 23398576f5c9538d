package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BuildBinary builds the codevector binary into a new temporary directory,
// with symbolic links to it under the names links (the kubectl plugin's,
// as make build makes them), and returns the directory; the caller
// removes it.
func BuildBinary(links ...string) (dir string, err error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	if dir, err = os.MkdirTemp("", "codevector-bin-"); err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", filepath.Join(dir, "codevector"), ".")
	// The go command's defaults, as for the test binaries: most of what
	// this build needs is then already in the build cache.
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		_ = os.RemoveAll(dir)
		return "", fmt.Errorf("go build: %v\n%s", err, out)
	}
	for _, link := range links {
		if err := os.Symlink("codevector", filepath.Join(dir, link)); err != nil {
			_ = os.RemoveAll(dir)
			return "", fmt.Errorf("linking %s to codevector: %w", link, err)
		}
	}
	return dir, nil
}

// ProcessEnv is the environment for a process a test runs from binDir (a
// BuildBinary directory): no provider credentials (so openai is dev mode's
// stand-in) and no KUBECONFIG, the control-plane binaries, and binDir first
// on PATH (for kubectl's plugin lookup).
func ProcessEnv(t testing.TB, binDir string) []string {
	t.Helper()
	assets, err := Assets()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "KUBECONFIG", "KUBEBUILDER_ASSETS", "PATH":
			continue
		}
		out = append(out, kv)
	}
	return append(out, "KUBEBUILDER_ASSETS="+assets, "PATH="+binDir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// FreeAddr is a loopback address with a port nothing listens on.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
