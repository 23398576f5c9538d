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
