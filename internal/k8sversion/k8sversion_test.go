package k8sversion

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestEverythingAgrees: the module that builds the binaries pins the same
// Kubernetes release, and the docs name it.
func TestEverythingAgrees(t *testing.T) {
	if !regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`).MatchString(Version) {
		t.Fatalf("version.txt holds %q, want MAJOR.MINOR.PATCH", Version)
	}
	root := filepath.Join("..", "..")
	read := func(path string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(root, path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if want := "k8s.io/kubernetes v" + Version + " "; !strings.Contains(read("hack/envtest-tools/go.mod"), want) {
		t.Errorf("hack/envtest-tools/go.mod does not require %q: update it with version.txt", strings.TrimSpace(want))
	}
	for _, doc := range []string{"README.md", "docs/reliability.md"} {
		if want := "kube-apiserver v" + Version; !strings.Contains(read(doc), want) {
			t.Errorf("%s does not say %q", doc, want)
		}
	}
}
