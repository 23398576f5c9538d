package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The gateway faces the internet and runs as its own Deployment: it must
// not link the controller (DESIGN.md section 2), nor must the packages the
// console and the CLI share with it. The one binary links both through
// internal/commands; nothing below it may.
func TestGatewayDoesNotLinkTheController(t *testing.T) {
	forbidden := []string{
		"github.com/codevector/codevector/controllers",
		"github.com/codevector/codevector/internal/manager",
	}
	for _, pkg := range []string{"./gateway/...", "./internal/keys", "./internal/seal", "./internal/reveal", "./api/..."} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s links %s", pkg, dep)
				}
			}
		}
	}
}

// Dev mode links the manager, the gateway and a control plane at once: only
// the dev command, the test environment and tests may import it (test
// files anywhere, bench and resilience whole), never a package that ships
// in the manager or the gateway.
func TestOnlyTheDevCommandAndTestsImportDevMode(t *testing.T) {
	const module = "github.com/codevector/codevector"
	const devmode = module + "/internal/devmode"
	allowed := map[string]bool{
		devmode:                       true,
		module + "/internal/commands": true,
		module + "/internal/testenv":  true,
	}
	allowedTrees := []string{module + "/bench", module + "/resilience"}
	// .Imports excludes what only _test.go files import (.TestImports,
	// .XTestImports): tests may use dev mode's pieces anywhere.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").CombinedOutput()
	if err != nil {
		t.Fatalf("go list ./...: %v\n%s", err, out)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, imports := fields[0], fields[1:]
		checked++
		if allowed[pkg] || slices.ContainsFunc(allowedTrees, func(tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }) {
			continue
		}
		if slices.Contains(imports, devmode) {
			t.Errorf("%s imports %s; only the dev command, internal/testenv and tests may", pkg, devmode)
		}
	}
	if checked < 10 {
		t.Fatalf("go list ./... listed only %d packages:\n%s", checked, out)
	}
}
