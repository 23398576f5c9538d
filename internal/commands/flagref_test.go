package commands

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var updateFlagReference = flag.Bool("update-flag-reference", false, "rewrite docs/flags.md from the commands")

// docs/flags.md is what the commands take: a flag added, renamed or given
// another default without the page following fails here (`make docs`).
func TestFlagReferenceIsCurrent(t *testing.T) {
	var b bytes.Buffer
	if err := WriteFlagReference(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "..", "docs", "flags.md")
	if *updateFlagReference {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	have, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v: run `make docs`", err)
	}
	if !bytes.Equal(have, b.Bytes()) {
		t.Errorf("docs/flags.md is stale: run `make docs` and commit it")
	}
	for _, want := range []string{"## codevector gateway", "`--budget-failure-mode`", "`--stale-index`", "## codevector keys revoke", "`--confirm-timeout`", "## codevector manager"} {
		if !bytes.Contains(b.Bytes(), []byte(want)) {
			t.Errorf("the flag reference has no %s", want)
		}
	}
}
