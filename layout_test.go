package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The gateway faces the internet and runs as its own Deployment: it must
// not link the controller (DESIGN.md section 2), nor must the packages the
// console and the CLI share with it. The one binary links both through
// internal/commands; nothing below it may.
func TestGatewayDoesNotLinkTheController(t *testing.T) {
	const controller = "github.com/codevector/codevector/controllers"
	for _, pkg := range []string{"./gateway/...", "./internal/keys", "./internal/seal", "./internal/reveal", "./api/..."} {
		out, err := exec.Command("go", "list", "-deps", pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if dep == controller || strings.HasPrefix(dep, controller+"/") || dep == "github.com/codevector/codevector/internal/operator" {
				t.Errorf("%s links %s", pkg, dep)
			}
		}
	}
}
