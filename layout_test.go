package main

import (
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The gateway faces the internet and runs as its own Deployment: it must
// not link the controller (docs/design.md, section 2), nor must the packages the
// console and the CLI share with it. The one binary links both through
// internal/commands; nothing below it may.
func TestGatewayDoesNotLinkTheController(t *testing.T) {
	forbidden := []string{
		"github.com/codevector/codevector/controllers",
		"github.com/codevector/codevector/internal/manager",
		"github.com/codevector/codevector/internal/commands",
	}
	for _, pkg := range []string{"./gateway/...", "./keys/...", "./humantime", "./api/..."} {
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
// the dev command (internal/commands/dev.go), the test environment and tests
// may import it (test files anywhere, bench and resilience whole), never a
// package that ships in the manager or the gateway.
func TestOnlyTheDevCommandAndTestsImportDevMode(t *testing.T) {
	const module = "github.com/codevector/codevector"
	const devmode = module + "/internal/devmode"
	allowed := map[string]bool{
		devmode:                      true,
		module + "/internal/testenv": true,
	}
	allowedTrees := []string{module + "/bench", module + "/resilience"}
	// .Imports excludes what only _test.go files import (.TestImports,
	// .XTestImports): tests may use dev mode's pieces anywhere.
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{.Dir}} {{join .Imports " "}}`, "./...").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list ./...: %v\n%s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg, dir, imports := fields[0], fields[1], fields[2:]
		checked++
		if allowed[pkg] || slices.ContainsFunc(allowedTrees, func(tree string) bool { return pkg == tree || strings.HasPrefix(pkg, tree+"/") }) {
			continue
		}
		if !slices.Contains(imports, devmode) {
			continue
		}
		if pkg != module+"/internal/commands" {
			t.Errorf("%s imports %s; only the dev command, internal/testenv and tests may", pkg, devmode)
			continue
		}
		// The one binary's commands package: the dev command only.
		for _, file := range importersOf(t, dir, devmode) {
			if file != "dev.go" {
				t.Errorf("internal/commands/%s imports %s; only the dev command (dev.go) may", file, devmode)
			}
		}
	}
	if checked < 10 {
		t.Fatalf("go list ./... listed only %d packages:\n%s", checked, out)
	}
}

// importersOf lists the non-test Go files of dir that import path.
func importersOf(t *testing.T, dir, path string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if imp.Path.Value == strconv.Quote(path) {
				out = append(out, filepath.Base(f))
			}
		}
	}
	return out
}

// The layout is the architecture: each top-level folder is a floor, and
// arrows between floors run one way only. A pair of folders that import
// each other (keys from internal/ and internal/ from a gateway package, as
// it once was) means a leaf lives on the wrong floor. Test files are
// exempt: a test may wire any floors together.
func TestNoTwoTopLevelFoldersImportEachOther(t *testing.T) {
	const module = "github.com/codevector/codevector"
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "./...").Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list ./...: %v\n%s", err, ee.Stderr)
	} else if err != nil {
		t.Fatalf("go list ./...: %v", err)
	}
	folder := func(pkg string) string {
		rest, ok := strings.CutPrefix(pkg, module+"/")
		if !ok {
			return ""
		}
		top, _, _ := strings.Cut(rest, "/")
		return top
	}
	// why[a][b] names one package of a that imports one of b.
	why := map[string]map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		from := folder(fields[0])
		for _, imp := range fields[1:] {
			to := folder(imp)
			if from == "" || to == "" || from == to {
				continue
			}
			if why[from] == nil {
				why[from] = map[string]string{}
			}
			why[from][to] = fields[0] + " imports " + imp
		}
	}
	if len(why) < 4 {
		t.Fatalf("found imports between only %d top-level folders:\n%s", len(why), out)
	}
	for a, targets := range why {
		for b, reason := range targets {
			if back, ok := why[b][a]; ok && a < b {
				t.Errorf("%s/ and %s/ import each other: %s; %s", a, b, reason, back)
			}
		}
	}
}

// The gateway's request path is rooms in order (docs/design.md, section
// 15), and the arrows between them run one way: the providers file knows
// none of the rooms; metering is the contract that forwarding and policy
// both use, and knows neither; policy decides without forwarding; the
// proxy forwards without knowing how policy decides. A room that needs a
// later one (policy once called into the proxy for model matching,
// refusals and prices) means the contract is in the wrong place.
func TestRequestPathRoomsImportOneWay(t *testing.T) {
	const gw = "github.com/codevector/codevector/gateway/"
	for room, never := range map[string][]string{
		"providers": {"proxy", "metering", "policy", "server"},
		"metering":  {"proxy", "policy", "server"},
		"policy":    {"proxy", "server"},
		"proxy":     {"policy", "server", "quota"},
	} {
		out, err := exec.Command("go", "list", "-deps", "./gateway/"+room).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps ./gateway/%s: %v\n%s", room, err, out)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, gw+room) {
			t.Fatalf("go list -deps ./gateway/%s did not list the package itself:\n%s", room, out)
		}
		for _, n := range never {
			if slices.Contains(deps, gw+n) {
				t.Errorf("gateway/%s links gateway/%s", room, n)
			}
		}
	}
}
