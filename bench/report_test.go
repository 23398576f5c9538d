package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"
)

// report is the Markdown the run prints at the end: one section per
// benchmark, each with the command that reproduces it.
type report struct {
	mu       sync.Mutex
	sections []section
}

type section struct {
	title   string
	command string
	tables  []*table
	notes   []string
}

func (r *report) add(s section) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.sections = append(r.sections, s)
}

func (r *report) markdown(machine string, start time.Time, loadBefore, loadAfter string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "## Results of %s\n\n", start.UTC().Format("2006-01-02 15:04 MST"))
	b.WriteString(machine)
	fmt.Fprintf(&b, "- Load average (1/5/15 min) before the run: %s; after: %s; run took %s\n\n",
		loadBefore, loadAfter, time.Since(start).Round(time.Second))
	for _, s := range r.sections {
		fmt.Fprintf(&b, "### %s\n\n", s.title)
		fmt.Fprintf(&b, "`%s`\n\n", s.command)
		for _, t := range s.tables {
			b.WriteString(t.markdown())
			b.WriteString("\n")
		}
		for _, n := range s.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(s.notes) > 0 {
			b.WriteString("\n")
		}
	}
	return b.String()
}

// benchCommand is the command that reruns one benchmark.
func benchCommand(name string) string {
	return fmt.Sprintf("go test -run='^$' -bench='^%s$' -benchtime=1x -timeout 60m ./bench/", name)
}

// table is a Markdown table; the first column is left-aligned, the others
// (numbers) right-aligned.
type table struct {
	header []string
	rows   [][]string
}

func newTable(header ...string) *table { return &table{header: header} }

func (t *table) row(cells ...any) {
	r := make([]string, len(cells))
	for i, c := range cells {
		r[i] = fmt.Sprint(c)
	}
	t.rows = append(t.rows, r)
}

func (t *table) markdown() string {
	var b strings.Builder
	b.WriteString("| " + strings.Join(t.header, " | ") + " |\n|")
	for i := range t.header {
		if i == 0 {
			b.WriteString(" --- |")
		} else {
			b.WriteString(" ---: |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
	}
	return b.String()
}

// describeMachine is the Markdown list naming the machine and toolchain.
func describeMachine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- CPU: %d x %s (GOMAXPROCS %d)\n", runtime.NumCPU(), cpuModel(), runtime.GOMAXPROCS(0))
	fmt.Fprintf(&b, "- Memory: %s\n", memTotal())
	fmt.Fprintf(&b, "- Kernel: Linux %s\n", readTrimmed("/proc/sys/kernel/osrelease"))
	fmt.Fprintf(&b, "- Go: %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return b.String()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if k, v, ok := strings.Cut(s.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func memTotal() string {
	kb := procStatusField("/proc/meminfo", "MemTotal")
	if kb == 0 {
		return "unknown"
	}
	return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
}

func loadAverage() string {
	f := strings.Fields(readTrimmed("/proc/loadavg"))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " / ")
}

func readTrimmed(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}

// Formatting helpers for table cells.

func ms(d time.Duration) string { return fmt.Sprintf("%.2f", float64(d)/float64(time.Millisecond)) }

func msSigned(d time.Duration) string {
	return fmt.Sprintf("%+.3f", float64(d)/float64(time.Millisecond))
}

func mib(bytes uint64) string { return fmt.Sprintf("%.1f", float64(bytes)/(1<<20)) }

func mibSigned(bytes int64) string { return fmt.Sprintf("%+.1f", float64(bytes)/(1<<20)) }

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
