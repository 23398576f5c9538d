package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
)

// repoRoot is the main module, seen from this one.
const repoRoot = "../.."

var (
	// A metric named in full: "codevector_manager_keys_expiring_soon".
	fullName = regexp.MustCompile(`"(codevector_[a-z0-9_]*[a-z0-9])"`)
	// Or by its own name, in prometheus.*Opts or a Desc, which the gateway
	// and the manager register with their prefix (prefixes).
	shortName = regexp.MustCompile(`(?:prometheus\.(?:Counter|Gauge|Histogram|Summary)Opts\{\s*Name:|prometheus\.NewDesc\()\s*"([a-z0-9_]+)"`)
	// controller-runtime's own metrics, which the manager serves.
	libName = regexp.MustCompile(`Name:\s*"((?:controller_runtime|workqueue|rest_client|leader_election)_[a-z0-9_]+)"`)
)

// prefixes are what each top-level folder's registerer puts before a
// metric's own name (gateway/server: WrapRegistererWithPrefix;
// controllers.NewMetrics likewise).
var prefixes = map[string]string{"gateway": "codevector_gateway_", "controllers": "codevector_manager_"}

// exportedMetrics greps the Go sources for the metrics they define: the
// product's (not its tests), and controller-runtime's.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{"up": true} // Prometheus's own, per target
	grep := func(root string, res ...*regexp.Regexp) {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "hack" || d.Name() == "bin" || d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			src, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, re := range res {
				for _, m := range re.FindAllStringSubmatch(string(src), -1) {
					names[strings.Join(m[1:], "_")] = true
				}
			}
			rel, _ := filepath.Rel(root, path)
			top, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
			if prefix, ok := prefixes[top]; ok {
				for _, m := range shortName.FindAllStringSubmatch(string(src), -1) {
					names[prefix+m[1]] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	grep(repoRoot, fullName)
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/controller-runtime")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "GOWORK=off")
	dir, err := cmd.Output()
	if err != nil {
		t.Fatalf("finding controller-runtime's sources: %v", err)
	}
	grep(filepath.Join(strings.TrimSpace(string(dir)), "pkg"), libName)
	return names
}

// usedMetrics returns the metric names an expression selects.
func usedMetrics(t *testing.T, expr string) []string {
	t.Helper()
	// Grafana's range variables are not PromQL.
	expr = strings.NewReplacer("$__rate_interval", "5m", "$__range", "1h", "$__interval", "1m").Replace(expr)
	e, err := parser.NewParser(parser.Options{}).ParseExpr(expr)
	if err != nil {
		t.Errorf("%q does not parse: %v", expr, err)
		return nil
	}
	var out []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			name := vs.Name
			for _, m := range vs.LabelMatchers {
				if m.Name == "__name__" {
					name = m.Value
				}
			}
			for _, suffix := range []string{"_bucket", "_sum", "_count"} {
				if trimmed, ok := strings.CutSuffix(name, suffix); ok && strings.HasSuffix(trimmed, "_seconds") {
					name = trimmed
				}
			}
			out = append(out, name)
		}
		return nil
	})
	return out
}

// TestMonitoringNamesExportedMetrics: every series the alerts and the
// dashboard query is one the code exports, so a renamed metric fails here
// and not in an on-call's silent dashboard.
func TestMonitoringNamesExportedMetrics(t *testing.T) {
	exported := exportedMetrics(t)
	for _, want := range []string{"codevector_gateway_policy_refusals_total", "codevector_manager_keys_expiring_soon", "codevector_gateway_argon2_in_flight"} {
		if !exported[want] {
			t.Fatalf("the grep of the Go sources misses %s: it proves nothing", want)
		}
	}
	check := func(where, expr string) {
		for _, name := range usedMetrics(t, expr) {
			if !exported[name] {
				t.Errorf("%s queries %s, which no Go source exports", where, name)
			}
		}
	}
	n := 0
	for _, g := range loadPrometheusRule(t, filepath.Join(monitoringDir, "prometheusrule.yaml")).Groups {
		for _, r := range g.Rules {
			check("alert "+r.Alert, r.Expr)
			n++
		}
	}
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "codevector-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			check("dashboard panel "+p.Title, tg.Expr)
			n++
		}
	}
	if n < 20 {
		t.Errorf("checked %d expressions, want the alerts' and the dashboard's", n)
	}
}
