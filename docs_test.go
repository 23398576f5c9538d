package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The repository is the only source of its design: comments cite
// docs/design.md by section, as `docs/design.md, section 12.2` or
// `docs/design.md, "The peer mesh"`, and every citation must name a
// section that exists there. The old design notes that lived outside the
// repository are cited nowhere (docs/design.md, section 2).

// oldDesign is the name of the design notes that are no longer cited,
// spelt in two pieces so this file does not cite them itself.
const oldDesign = "DESIGN" + ".md"

var (
	// designHeading is a numbered heading of docs/design.md: "## 12. Per-key
	// policy: ..." or "### 12.2 Metering a request".
	designHeading = regexp.MustCompile(`(?m)^#{2,4} (\d+(?:\.\d+)*)\.? (.+?)\s*$`)
	// commentBreak joins a comment that wraps: a line break and the next
	// line's comment marker, so that a citation split over two lines
	// reads as one.
	commentBreak = regexp.MustCompile(`[ \t]*\r?\n[ \t]*(?:(?://+|#+)[ \t]*)?`)
	// citation is "docs/design.md, section N" or "docs/design.md section
	// N", or "docs/design.md, "Title"".
	citation = regexp.MustCompile(`docs/design\.md,? (?:sections? ([0-9][0-9.]*[0-9]|[0-9])|"([^"]+)"|section\b)`)
)

// citingFiles are the files that may carry citations: sources, manifests,
// scripts, docs and build files.
func citingFile(path string) bool {
	switch filepath.Ext(path) {
	case ".go", ".yaml", ".yml", ".md", ".sh", ".mod", ".json", ".tmpl", ".html", ".js", ".css", ".txt", ".proto":
		return true
	}
	switch filepath.Base(path) {
	case "Makefile", "Dockerfile", "PROJECT":
		return true
	}
	return false
}

func designSections(t *testing.T) (numbers, titles map[string]bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("docs", "design.md"))
	if err != nil {
		t.Fatalf("reading docs/design.md: %v", err)
	}
	numbers, titles = map[string]bool{}, map[string]bool{}
	for _, m := range designHeading.FindAllStringSubmatch(string(b), -1) {
		if numbers[m[1]] {
			t.Errorf("docs/design.md numbers two sections %s", m[1])
		}
		numbers[m[1]] = true
		titles[strings.ToLower(m[2])] = true
	}
	return numbers, titles
}

func TestDesignCitations(t *testing.T) {
	numbers, titles := designSections(t)
	for _, want := range []string{"2", "3", "6", "7.1", "7.2", "11", "12", "13"} {
		if !numbers[want] {
			t.Errorf("docs/design.md has no section %s; headings look like \"## 12. Title\" or \"### 12.2 Title\"", want)
		}
	}
	cited := 0
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != "." && (strings.HasPrefix(name, ".") || name == "bin" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !citingFile(path) {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		text := string(b)
		if path != "docs_test.go" && strings.Contains(text, oldDesign) {
			for i, line := range strings.Split(text, "\n") {
				if strings.Contains(line, oldDesign) {
					t.Errorf("%s:%d cites %s, which is not in this repository: cite docs/design.md, section N", path, i+1, oldDesign)
				}
			}
		}
		joined := commentBreak.ReplaceAllString(text, " ")
		for _, m := range citation.FindAllStringSubmatch(joined, -1) {
			if path == "docs_test.go" {
				continue // the examples in this file's comments
			}
			cited++
			switch {
			case m[1] != "":
				if !numbers[m[1]] {
					t.Errorf("%s cites %q: docs/design.md has no section %s", path, m[0], m[1])
				}
			case m[2] != "":
				if !titles[strings.ToLower(m[2])] {
					t.Errorf("%s cites %q: docs/design.md has no section titled %q", path, m[0], m[2])
				}
			default:
				t.Errorf("%s cites %q: name the section by number or by its quoted title", path, m[0])
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if cited == 0 {
		t.Error("no citation of docs/design.md found: has the citation pattern stopped matching?")
	}
}
