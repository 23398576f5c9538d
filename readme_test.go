package main

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// readmeBetween is the README's text from the first start on, up to the
// next end.
func readmeBetween(t *testing.T, readme, start, end string) string {
	t.Helper()
	_, after, ok := strings.Cut(readme, start)
	if !ok {
		t.Fatalf("README.md has no %q", start)
	}
	text, _, ok := strings.Cut(after, end)
	if !ok {
		t.Fatalf("README.md has no %q after %q", end, start)
	}
	return text
}

// The README says how long `make test` takes in two places, and what the
// first `make dev` costs: a newcomer timing either must not find two answers,
// nor a first `make dev` that takes twice what it says.
func TestREADMETimes(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	minutes := regexp.MustCompile(`\b([a-z]+|\d+) minutes\b`)
	said := func(text string) []string {
		var out []string
		for _, m := range minutes.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1])
		}
		return out
	}

	intro := said(readmeBetween(t, readme, "`make test` also", "CI runs"))
	tests := said(readmeBetween(t, readme, "## Tests", "| where |"))
	if len(intro) == 0 || !slices.Equal(intro, tests) {
		t.Errorf("make test takes %v minutes at the top of the README, %v in its Tests section: give one time", intro, tests)
	}

	// The first make dev builds the control plane and compiles the binary.
	for _, where := range []struct{ name, text string }{
		{"the top", readmeBetween(t, readme, "Both work on a fresh machine", "`make test` also")},
		{"the tour", readmeBetween(t, readme, "## Five-minute tour", "  Console ")},
	} {
		if !strings.Contains(where.text, "compiles `bin/codevector`") {
			t.Errorf("%s of the README does not say that the first make dev also compiles bin/codevector:\n%s", where.name, where.text)
		}
	}
}
