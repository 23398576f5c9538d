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

// forEachCitingFile calls fn with the path and text of every file in the
// repository that may cite a doc (citingFile), skipping hidden folders,
// bin and node_modules.
func forEachCitingFile(t *testing.T, fn func(path, text string)) {
	t.Helper()
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
		fn(path, string(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
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
	forEachCitingFile(t, func(path, text string) {
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
	})
	if cited == 0 {
		t.Error("no citation of docs/design.md found: has the citation pattern stopped matching?")
	}
}

// The benchmarks page is cited by section too, as `benchmarks.md,
// "Rollout"`, `[benchmarks.md](benchmarks.md), "Revocation relay"` or
// `benchmarks.md, section Scale`; its run history lives in git, so a
// section that a rewrite drops must not leave citations pointing nowhere.
var (
	benchHeading  = regexp.MustCompile(`(?m)^#{2,4} (.+?)\s*$`)
	benchCitation = regexp.MustCompile(`benchmarks\.md(?:\]\([^)]*\))?(?:,? (?:"([^"]+)"|section ([^.,;:()"]+)))?`)
)

func benchmarkSections(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("docs", "benchmarks.md"))
	if err != nil {
		t.Fatalf("reading docs/benchmarks.md: %v", err)
	}
	titles := map[string]bool{}
	for _, m := range benchHeading.FindAllStringSubmatch(string(b), -1) {
		titles[strings.ToLower(m[1])] = true
	}
	return titles
}

func TestBenchmarkCitations(t *testing.T) {
	titles := benchmarkSections(t)
	// sectionNamed reports whether a `section X` citation names a heading:
	// X is the heading, or the heading followed by more of the sentence
	// ("section Scale for the details").
	sectionNamed := func(cited string) bool {
		cited = strings.ToLower(strings.TrimSpace(cited))
		for title := range titles {
			if cited == title || strings.HasPrefix(cited, title+" ") {
				return true
			}
		}
		return false
	}
	named := 0
	forEachCitingFile(t, func(path, text string) {
		if path == "docs_test.go" {
			return
		}
		joined := commentBreak.ReplaceAllString(text, " ")
		for _, m := range benchCitation.FindAllStringSubmatch(joined, -1) {
			switch {
			case m[1] != "":
				named++
				if !titles[strings.ToLower(m[1])] {
					t.Errorf("%s cites %q: docs/benchmarks.md has no section titled %q", path, m[0], m[1])
				}
			case m[2] != "":
				named++
				if !sectionNamed(m[2]) {
					t.Errorf("%s cites %q: docs/benchmarks.md has no section %q", path, m[0], m[2])
				}
			case filepath.Ext(path) == ".go":
				// Pages link to the benchmarks page as a whole; a code
				// comment cites it for a fact, which lives in a section.
				t.Errorf("%s cites %q: name the section, as docs/benchmarks.md, \"Title\"", path, m[0])
			}
		}
	})
	if named == 0 {
		t.Error("no citation of a docs/benchmarks.md section found: has the citation pattern stopped matching?")
	}
}

// tableCells splits a Markdown table row into its cells, leaving a `|`
// inside backticks (a -bench regular expression) to its cell.
func tableCells(row string) []string {
	row = strings.TrimSpace(row)
	row = strings.TrimPrefix(strings.TrimSuffix(row, "|"), "|")
	var cells []string
	var cell strings.Builder
	code := false
	for _, r := range row {
		switch {
		case r == '`':
			code = !code
		case r == '|' && !code:
			cells = append(cells, strings.TrimSpace(cell.String()))
			cell.Reset()
			continue
		}
		cell.WriteRune(r)
	}
	return append(cells, strings.TrimSpace(cell.String()))
}

// benchFlag is the -bench pattern of a `go test` command in the table, and
// testPackage its package directory.
var (
	benchFlag   = regexp.MustCompile(`-bench[= ]'?([^' ]+)'?`)
	testPackage = regexp.MustCompile(`\./([\w/]+)/`)
	benchFunc   = regexp.MustCompile(`(?m)^func (Benchmark\w+)\(`)
)

// The current figures are one table whose every row says what was measured,
// against what, with what verdict, where and when, and how to measure it
// again; and the command still runs a benchmark that exists, so that code
// moving to another package does not leave the table pointing at nothing.
func TestBenchmarkTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Current figures\n")
	if !ok {
		t.Fatal(`docs/benchmarks.md has no "## Current figures" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var rows []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "|") {
			rows = append(rows, line)
		}
	}
	want := []string{"figure", "target", "value", "verdict", "machine, date (UTC)", "command"}
	if len(rows) < 3 || strings.Join(tableCells(rows[0]), "|") != strings.Join(want, "|") {
		t.Fatalf("the Current figures table must have the columns %q, found %q", want, rows[:min(1, len(rows))])
	}
	for _, row := range rows[2:] {
		cells := tableCells(row)
		if len(cells) != len(want) {
			t.Errorf("row has %d cells, want %d: %s", len(cells), len(want), row)
			continue
		}
		figure, target, verdict, command := cells[0], cells[1], cells[3], cells[5]
		switch {
		case target == "-" && verdict != "-":
			t.Errorf("%q has no target but the verdict %q", figure, verdict)
		case target != "-" && !strings.HasPrefix(verdict, "met") && !strings.HasPrefix(verdict, "missed"):
			t.Errorf("%q has the target %q: its verdict must start with met or missed, not %q", figure, target, verdict)
		}
		if cells[2] == "" || cells[4] == "" || !strings.Contains(command, "`") {
			t.Errorf("%q needs a value, a machine and date, and a command in backticks", figure)
		}
		for _, cmd := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(command, -1) {
			pkg, pattern := testPackage.FindStringSubmatch(cmd[1]), benchFlag.FindStringSubmatch(cmd[1])
			if pkg == nil || pattern == nil {
				continue // make bench-policy and the like
			}
			re, err := regexp.Compile(pattern[1])
			if err != nil {
				t.Errorf("%q: -bench %q is not a regular expression: %v", figure, pattern[1], err)
				continue
			}
			files, _ := filepath.Glob(filepath.Join(pkg[1], "*_test.go"))
			found := false
			for _, f := range files {
				src, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range benchFunc.FindAllStringSubmatch(string(src), -1) {
					found = found || re.MatchString(m[1])
				}
			}
			if !found {
				t.Errorf("%q: `%s` runs no benchmark: ./%s has none matching %q", figure, cmd[1], pkg[1], pattern[1])
			}
		}
	}
}
