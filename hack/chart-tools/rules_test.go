package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/rules"
	"sigs.k8s.io/yaml"
)

// monitoringDir is config/monitoring, seen from this module.
const monitoringDir = "../../config/monitoring"

// unitTests is promtool's rule unit-test file format (the fields used here).
type unitTests struct {
	RuleFiles          []string       `json:"rule_files"`
	EvaluationInterval model.Duration `json:"evaluation_interval"`
	Tests              []struct {
		Name        string         `json:"name"`
		Interval    model.Duration `json:"interval"`
		InputSeries []struct {
			Series string `json:"series"`
			Values string `json:"values"`
		} `json:"input_series"`
		AlertRuleTests []struct {
			EvalTime  model.Duration `json:"eval_time"`
			Alertname string         `json:"alertname"`
			ExpAlerts []struct {
				ExpLabels      map[string]string `json:"exp_labels"`
				ExpAnnotations map[string]string `json:"exp_annotations"`
			} `json:"exp_alerts"`
		} `json:"alert_rule_test"`
	} `json:"tests"`
}

// loadPrometheusRule reads the groups of a PrometheusRule (or of a plain
// rule file) and validates them as Prometheus does when it loads them.
func loadPrometheusRule(t *testing.T, path string) *rulefmt.RuleGroups {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	content := raw
	if obj.Kind == "PrometheusRule" {
		if content, err = yaml.JSONToYAML(obj.Spec); err != nil {
			t.Fatal(err)
		}
	}
	groups, errs := rulefmt.Parse(content, false, model.UTF8Validation, parser.NewParser(parser.Options{}), nil)
	if len(errs) > 0 {
		t.Fatalf("%s: %v", path, errs)
	}
	return groups
}

// TestAlertRules runs config/monitoring/prometheusrule_test.yaml: for each
// test, its input series in a real TSDB, every alerting rule evaluated by
// Prometheus's rule engine each evaluation interval up to the test's last
// eval_time (so `for:` holds as in a server), and the firing alerts
// compared with the expected ones.
func TestAlertRules(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(monitoringDir, "prometheusrule_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var ut unitTests
	if err := yaml.UnmarshalStrict(raw, &ut); err != nil {
		t.Fatalf("prometheusrule_test.yaml: %v", err)
	}
	p := parser.NewParser(parser.Options{})
	var alerting []*rulefmt.Rule
	for _, f := range ut.RuleFiles {
		for _, g := range loadPrometheusRule(t, filepath.Join(monitoringDir, f)).Groups {
			for i := range g.Rules {
				if g.Rules[i].Alert != "" {
					alerting = append(alerting, &g.Rules[i])
				}
			}
		}
	}
	tested := map[string]map[bool]bool{} // alert -> fires in a test case?
	for _, tc := range ut.Tests {
		t.Run(tc.Name, func(t *testing.T) {
			var load strings.Builder
			fmt.Fprintf(&load, "load %s\n", tc.Interval)
			for _, s := range tc.InputSeries {
				fmt.Fprintf(&load, "  %s %s\n", s.Series, s.Values)
			}
			storage := promqltest.LoadedStorage(t, load.String())
			engine := promqltest.NewTestEngine(t, false, 0, 1_000_000)
			query := rules.EngineQueryFunc(engine, storage)

			// Fresh rules per test case: their pending/firing state is
			// per case, as in promtool.
			byName := map[string]*rules.AlertingRule{}
			var all []*rules.AlertingRule
			for _, r := range alerting {
				expr, err := p.ParseExpr(r.Expr)
				if err != nil {
					t.Fatalf("%s: %v", r.Alert, err)
				}
				ar := rules.NewAlertingRule(r.Alert, expr, time.Duration(r.For), time.Duration(r.KeepFiringFor),
					labels.FromMap(r.Labels), labels.FromMap(r.Annotations), labels.EmptyLabels(), "", true, nil)
				byName[r.Alert] = ar
				all = append(all, ar)
			}
			evalAt := map[time.Duration][]int{}
			var last time.Duration
			for i, at := range tc.AlertRuleTests {
				if byName[at.Alertname] == nil {
					t.Fatalf("alert_rule_test %d names %s, which prometheusrule.yaml does not define", i, at.Alertname)
				}
				evalAt[time.Duration(at.EvalTime)] = append(evalAt[time.Duration(at.EvalTime)], i)
				last = max(last, time.Duration(at.EvalTime))
			}
			step := time.Duration(ut.EvaluationInterval)
			for ts := time.Duration(0); ts <= last; ts += step {
				for _, ar := range all {
					if _, err := ar.Eval(context.Background(), 0, time.Unix(0, 0).UTC().Add(ts), query, nil, 0); err != nil {
						t.Fatalf("%s at %s: %v", ar.Name(), ts, err)
					}
				}
				for _, i := range evalAt[ts] {
					at := tc.AlertRuleTests[i]
					got := firing(byName[at.Alertname])
					var want []string
					for _, e := range at.ExpAlerts {
						l := map[string]string{"alertname": at.Alertname}
						for k, v := range e.ExpLabels {
							l[k] = v
						}
						want = append(want, labels.FromMap(l).String())
					}
					slices.Sort(want)
					var gotLabels []string
					for _, a := range got {
						gotLabels = append(gotLabels, a.Labels.String())
					}
					if !slices.Equal(gotLabels, want) {
						t.Errorf("%s at %s: firing %v, want %v", at.Alertname, ts, gotLabels, want)
						continue
					}
					for _, e := range at.ExpAlerts {
						l := map[string]string{"alertname": at.Alertname}
						for k, v := range e.ExpLabels {
							l[k] = v
						}
						a := got[slices.Index(gotLabels, labels.FromMap(l).String())]
						for k, v := range e.ExpAnnotations {
							if a.Annotations.Get(k) != v {
								t.Errorf("%s at %s: annotation %s = %q, want %q", at.Alertname, ts, k, a.Annotations.Get(k), v)
							}
						}
					}
					if tested[at.Alertname] == nil {
						tested[at.Alertname] = map[bool]bool{}
					}
					tested[at.Alertname][len(want) > 0] = true
				}
			}
		})
	}
	// Every alert is shown to fire, and to stay quiet, at least once.
	for _, r := range alerting {
		if !tested[r.Alert][true] || !tested[r.Alert][false] {
			t.Errorf("alert %s lacks a test where it fires and one where it does not (prometheusrule_test.yaml)", r.Alert)
		}
	}
}

// firing returns the rule's firing alerts, sorted by labels.
func firing(r *rules.AlertingRule) []*rules.Alert {
	var out []*rules.Alert
	for _, a := range r.ActiveAlerts() {
		if a.State == rules.StateFiring {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *rules.Alert) int { return strings.Compare(a.Labels.String(), b.Labels.String()) })
	return out
}
