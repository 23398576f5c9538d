package config_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/codevector/codevector/internal/commands"
	"github.com/codevector/codevector/internal/devmode"
)

// chartDir is the Helm chart, seen from config/.
const chartDir = "../charts/codevector"

var chartTool struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// helmTemplate renders the chart as `helm template --include-crds` does,
// with Helm's own Go packages: hack/chart-tools, a module of its own so the
// product's go.mod stays free of Helm's dependencies. The tool is built
// once per test binary.
func helmTemplate(t *testing.T, args ...string) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	chartTool.once.Do(func() {
		if chartTool.dir, chartTool.err = os.MkdirTemp("", "chart-tools-"); chartTool.err != nil {
			return
		}
		chartTool.path = filepath.Join(chartTool.dir, "chart-tools")
		cmd := exec.Command("go", "-C", "../hack/chart-tools", "build", "-o", chartTool.path, ".")
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			chartTool.err = fmt.Errorf("building hack/chart-tools: %v\n%s", err, out)
		}
	})
	if chartTool.err != nil {
		t.Fatal(chartTool.err)
	}
	cmd := exec.Command(chartTool.path, append([]string{"template", chartDir, "--include-crds"}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chart-tools template %v: %v\n%s", args, err, stderr.String())
	}
	objs, err := devmode.DecodeYAML(out)
	if err != nil {
		t.Fatalf("decoding the rendered chart: %v", err)
	}
	return out, objs
}

// removeChartTool is an AfterTests step of TestMain.
func removeChartTool(code int) int {
	if chartTool.dir != "" {
		os.RemoveAll(chartTool.dir)
	}
	return code
}

// TestChartCarriesConfigVerbatim: the chart's CRD, admission policies,
// manager ClusterRole, alerts and dashboard are config/'s files, byte for
// byte (make manifests copies them). One source: a CRD change that skips
// the chart fails here.
func TestChartCarriesConfigVerbatim(t *testing.T) {
	pairs := map[string]string{
		"rbac/manager/role.yaml":               "files/rbac/manager-role.yaml",
		"monitoring/prometheusrule.yaml":       "files/monitoring/prometheusrule.yaml",
		"monitoring/codevector-dashboard.json": "files/monitoring/codevector-dashboard.json",
	}
	for _, dir := range []struct{ config, chart string }{{"crd/bases", "crds"}, {"policies", "files/policies"}} {
		want, _ := filepath.Glob(filepath.Join(dir.config, "*.yaml"))
		got, _ := filepath.Glob(filepath.Join(chartDir, dir.chart, "*.yaml"))
		var wantNames, gotNames []string
		for _, f := range want {
			if filepath.Base(f) != "kustomization.yaml" {
				wantNames = append(wantNames, filepath.Base(f))
				pairs[f] = filepath.Join(dir.chart, filepath.Base(f))
			}
		}
		for _, f := range got {
			gotNames = append(gotNames, filepath.Base(f))
		}
		if !slices.Equal(wantNames, gotNames) {
			t.Errorf("charts/codevector/%s has %v, config/%s has %v: run make manifests", dir.chart, gotNames, dir.config, wantNames)
		}
	}
	for src, dst := range pairs {
		a, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(chartDir, dst))
		if err != nil {
			t.Errorf("the chart lacks %s (a copy of config/%s): run make manifests", dst, src)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("charts/codevector/%s differs from config/%s: run make manifests", dst, src)
		}
	}
}

// grant is one permission a rule gives: RBAC rules expanded to single
// verbs on single resources, so that two ways of writing the same rules
// compare equal.
type grant struct{ namespace, group, resource, name, url, verb string }

func grants(t *testing.T, u *unstructured.Unstructured) []grant {
	t.Helper()
	var rules []rbacv1.PolicyRule
	raw, _, _ := unstructured.NestedSlice(u.Object, "rules")
	for _, r := range raw {
		var pr rbacv1.PolicyRule
		if err := fromMap(r, &pr); err != nil {
			t.Fatalf("%s %s: %v", u.GetKind(), u.GetName(), err)
		}
		rules = append(rules, pr)
	}
	var out []grant
	orAll := func(s []string) []string {
		if len(s) == 0 {
			return []string{""}
		}
		return s
	}
	for _, r := range rules {
		for _, v := range r.Verbs {
			for _, url := range r.NonResourceURLs {
				out = append(out, grant{url: url, verb: v})
			}
			for _, g := range r.APIGroups {
				for _, res := range r.Resources {
					for _, n := range orAll(r.ResourceNames) {
						out = append(out, grant{u.GetNamespace(), g, res, n, "", v})
					}
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return fmt.Sprint(out[i]) < fmt.Sprint(out[j]) })
	return slices.Compact(out)
}

func fromMap(m any, into any) error {
	b, err := yaml.Marshal(m)
	if err != nil {
		return err
	}
	return yaml.Unmarshal(b, into)
}

// rbacObjects returns an install's RBAC objects and service accounts by
// kind/namespace/name.
func rbacObjects(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		switch o.GetKind() {
		case "ClusterRole", "Role", "ClusterRoleBinding", "RoleBinding", "ServiceAccount":
			out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
		}
	}
	return out
}

// TestChartGrantsExactlyWhatKustomizeGrants compares the RBAC of the
// rendered chart with config/default's, rule by rule: the same roles,
// each granting the same verbs on the same resources, bound to the same
// service accounts.
func TestChartGrantsExactlyWhatKustomizeGrants(t *testing.T) {
	_, kobjs := kustomize(t, "default")
	_, hobjs := helmTemplate(t)
	k, h := rbacObjects(kobjs), rbacObjects(hobjs)
	if len(k) < 12 {
		t.Fatalf("config/default has %d RBAC objects, want the roles, bindings and service accounts", len(k))
	}
	for id, ko := range k {
		ho, ok := h[id]
		if !ok {
			t.Errorf("the chart lacks %s", id)
			continue
		}
		switch ko.GetKind() {
		case "ClusterRole", "Role":
			kg, hg := grants(t, ko), grants(t, ho)
			for _, g := range kg {
				if !slices.Contains(hg, g) {
					t.Errorf("%s: the chart does not grant %+v, which config/default does", id, g)
				}
			}
			for _, g := range hg {
				if !slices.Contains(kg, g) {
					t.Errorf("%s: the chart grants %+v, which config/default does not", id, g)
				}
			}
			if len(kg) == 0 {
				t.Errorf("%s grants nothing: the comparison proves nothing", id)
			}
			// Aggregation labels put the user roles into edit, admin and view.
			for key, v := range ko.GetLabels() {
				if strings.HasPrefix(key, "rbac.authorization.k8s.io/") && ho.GetLabels()[key] != v {
					t.Errorf("%s: label %s = %q, want %q as in config/default", id, key, ho.GetLabels()[key], v)
				}
			}
		case "ClusterRoleBinding", "RoleBinding":
			for _, field := range []string{"roleRef", "subjects"} {
				if !reflect.DeepEqual(ko.Object[field], ho.Object[field]) {
					t.Errorf("%s: %s = %v, config/default has %v", id, field, ho.Object[field], ko.Object[field])
				}
			}
		}
	}
	for id := range h {
		if _, ok := k[id]; !ok {
			t.Errorf("the chart has %s, which config/default does not", id)
		}
	}
}

// TestChartInstallsWhatKustomizeInstalls: with its default values the
// chart renders config/default's objects (but the Namespace, which Helm
// does not own): the same CRD and admission policies, and Deployments,
// Services, PodDisruptionBudget and providers that differ only by the
// image reference and labels.
func TestChartInstallsWhatKustomizeInstalls(t *testing.T) {
	_, kobjs := kustomize(t, "default")
	_, hobjs := helmTemplate(t)
	byID := func(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
		out := map[string]*unstructured.Unstructured{}
		for _, o := range objs {
			out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = o
		}
		return out
	}
	k, h := byID(kobjs), byID(hobjs)
	for id := range k {
		if _, ok := h[id]; !ok && !strings.HasPrefix(id, "Namespace/") {
			t.Errorf("the chart lacks %s", id)
		}
	}
	for id := range h {
		if _, ok := k[id]; !ok {
			t.Errorf("the chart has %s, which config/default does not", id)
		}
	}
	spec := func(o *unstructured.Unstructured, path ...string) any {
		v, _, _ := unstructured.NestedFieldCopy(o.Object, path...)
		return v
	}
	for id, ko := range k {
		ho, ok := h[id]
		if !ok {
			continue
		}
		switch ko.GetKind() {
		case "CustomResourceDefinition", "MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding",
			"ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding":
			// Whitespace aside: kustomize re-serializes folded CEL
			// expressions with more-indented lines (an extra blank line),
			// while Helm passes the files' text to the API server as is.
			if !reflect.DeepEqual(squeezeSpaces(spec(ko, "spec")), squeezeSpaces(spec(ho, "spec"))) {
				t.Errorf("%s: the chart's spec differs from config/default's", id)
			}
		case "Service", "PodDisruptionBudget":
			if t, _, _ := unstructured.NestedString(ho.Object, "spec", "type"); t == "ClusterIP" {
				unstructured.RemoveNestedField(ho.Object, "spec", "type") // the default
			}
			if !reflect.DeepEqual(spec(ko, "spec"), spec(ho, "spec")) {
				t.Errorf("%s: spec %v, config/default has %v", id, spec(ho, "spec"), spec(ko, "spec"))
			}
		case "ConfigMap":
			var kp, hp any
			if err := yaml.Unmarshal([]byte(ko.Object["data"].(map[string]any)["providers.yaml"].(string)), &kp); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal([]byte(ho.Object["data"].(map[string]any)["providers.yaml"].(string)), &hp); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(kp, hp) {
				t.Errorf("%s: the chart's providers file %v differs from config/default's %v", id, hp, kp)
			}
		case "Deployment":
			var kd, hd appsv1.Deployment
			if err := fromMap(ko.Object, &kd); err != nil {
				t.Fatal(err)
			}
			if err := fromMap(ho.Object, &hd); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(kd.Spec.Replicas, hd.Spec.Replicas) || !reflect.DeepEqual(kd.Spec.Strategy, hd.Spec.Strategy) ||
				!reflect.DeepEqual(kd.Spec.Selector, hd.Spec.Selector) {
				t.Errorf("%s: replicas, strategy or selector differ from config/default's", id)
			}
			kp, hp := kd.Spec.Template.Spec, hd.Spec.Template.Spec
			for i := range hp.Containers {
				if !strings.HasPrefix(hp.Containers[i].Image, "ghcr.io/codevector/codevector:v") {
					t.Errorf("%s: image %q, want a released version of ghcr.io/codevector/codevector", id, hp.Containers[i].Image)
				}
				hp.Containers[i].Image, kp.Containers[i].Image = "", ""
				hp.Containers[i].ImagePullPolicy = ""
			}
			if !reflect.DeepEqual(kp, hp) {
				kj, _ := yaml.Marshal(kp)
				hj, _ := yaml.Marshal(hp)
				t.Errorf("%s: the chart's pod spec differs from config/default's:\nchart:\n%s\nconfig/default:\n%s", id, hj, kj)
			}
		}
	}
}

// TestChartArgsAreFlagsTheBinaryKnows parses the containers' args of the
// chart, in both console modes with every option set, with the real command
// line (followed by -h, so nothing starts).
func TestChartArgsAreFlagsTheBinaryKnows(t *testing.T) {
	for _, values := range [][]string{
		{"--set", "console.header.proxyCIDRs={10.0.12.34/32,10.1.0.0/16}", "--set", "console.header.userHeader=X-Forwarded-Email",
			"--set", "console.header.groupsHeader=X-Forwarded-Groups", "--set", "gateway.extraArgs={--max-keys-per-user=20}",
			"--set", "manager.extraArgs={--reveal-window=15m}"},
		{"--set", "console.auth=oidc", "--set", "console.oidc.issuerURL=https://dex.example.com", "--set", "console.oidc.clientID=codevector",
			"--set", "console.oidc.redirectURL=https://gateway.example.com/oauth2/callback", "--set", "gateway.peers.enabled=false"},
	} {
		_, objs := helmTemplate(t, values...)
		b := index(objs)
		for _, name := range []string{"codevector-manager", "codevector-gateway"} {
			var d appsv1.Deployment
			b.get(t, "Deployment", name, &d)
			args := d.Spec.Template.Spec.Containers[0].Args
			if code := commands.Main(append(append([]string{"codevector"}, args...), "-h")); code != 0 {
				t.Errorf("%s: codevector %s exits %d: an arg is not a flag of the binary", name, strings.Join(args, " "), code)
			}
			if name == "codevector-gateway" && len(args) < 8 {
				t.Errorf("gateway args %v: the values did not reach them", args)
			}
		}
	}
}

// TestChartPodsMeetTheRestrictedPodSecurityStandard creates the chart's
// pods (dry run) in a namespace that enforces "restricted".
func TestChartPodsMeetTheRestrictedPodSecurityStandard(t *testing.T) {
	_, objs := helmTemplate(t)
	image := "ghcr.io/codevector/codevector:" + chartAppVersion(t)
	podsMeetRestricted(t, "psa-restricted-chart", index(objs), func(d *appsv1.Deployment) { checkHardened(t, d, image) })
}

// TestChartInstallsAndRuns applies the whole rendered chart to the API
// server (server-side apply, as helm does), with monitoring on where the
// cluster has the CRDs for it, then runs the real manager and gateway as
// the chart's service accounts, bound only by the chart's RBAC: a key is
// issued, revealed and served.
func TestChartInstallsAndRuns(t *testing.T) {
	ctx := context.Background()
	out, objs := helmTemplate(t, "--set", "monitoring.grafanaDashboard.enabled=true")
	if err := devmode.ApplyYAML(ctx, env.Client, out, "charts/codevector"); err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(o.GroupVersionKind())
		if err := env.Client.Get(ctx, client.ObjectKeyFromObject(o), live); err != nil {
			t.Errorf("%s %s was not installed: %v", o.GetKind(), o.GetName(), err)
		}
	}

	var rbac bytes.Buffer
	for _, o := range rbacObjects(objs) {
		b, err := yaml.Marshal(o.Object)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&rbac, "---\n%s", b)
	}
	tenant := env.Namespace(t)
	startManagerAs(t, asServiceAccountBoundBy(t, "codevector-manager", rbac.Bytes(), "charts/codevector"))
	gw := asServiceAccountBoundBy(t, "codevector-gateway", rbac.Bytes(), "charts/codevector")

	// A tenant's key: issued by the manager, served by the gateway, its
	// last use recorded.
	base, _ := servesATenantKey(t, gw, tenant)

	// The console's path: the gateway creates a key for a user in the
	// system namespace and consumes its reveal.
	servesAConsoleKey(t, gw, base, "chart-console-made")

	// And no more than that: a tenant's Secrets stay out of reach.
	checkAccess(t, gw, []access{
		{"get", "", "secrets", "", tenant, false},
		{"list", "", "secrets", "", "", false},
		{"create", "gateway.codevector.io", "apikeys", "", tenant, false},
		{"list", "", "secrets", "", systemNS, true},
	})
}

// chartAppVersion is the image tag the chart deploys by default.
func chartAppVersion(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir, "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	if c.AppVersion == "" || c.AppVersion == "latest" {
		t.Fatalf("Chart.yaml appVersion = %q, want a release version", c.AppVersion)
	}
	return c.AppVersion
}

// TestChartMonitoringIsConfigMonitoring: monitoring is off by default
// (TestChartInstallsWhatKustomizeInstalls), and each value switches on
// exactly an object of config/monitoring: the same ServiceMonitor specs,
// alerts and dashboard. The ServiceMonitors scrape a port named metrics
// that the Services they select have.
func TestChartMonitoringIsConfigMonitoring(t *testing.T) {
	_, kobjs := kustomize(t, "monitoring")
	_, hobjs := helmTemplate(t, "--set", "monitoring.serviceMonitor.enabled=true",
		"--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.grafanaDashboard.enabled=true")
	h := index(hobjs)
	if len(kobjs) != 4 {
		t.Errorf("config/monitoring has %d objects, want 2 ServiceMonitors, a PrometheusRule and the dashboard", len(kobjs))
	}
	_, defaults := kustomize(t, "default")
	for _, ko := range kobjs {
		ho, ok := h[ko.GetKind()+"/"+ko.GetName()]
		if !ok {
			t.Errorf("the chart with monitoring on lacks %s %s", ko.GetKind(), ko.GetName())
			continue
		}
		if ko.GetNamespace() != ho.GetNamespace() {
			t.Errorf("%s %s: namespace %q, config/monitoring has %q", ko.GetKind(), ko.GetName(), ho.GetNamespace(), ko.GetNamespace())
		}
		field := "spec"
		if ko.GetKind() == "ConfigMap" {
			field = "data"
			if ho.GetLabels()["grafana_dashboard"] != "1" || ko.GetLabels()["grafana_dashboard"] != "1" {
				t.Errorf("the dashboard ConfigMaps lack the label grafana_dashboard: \"1\"")
			}
		}
		if !reflect.DeepEqual(ko.Object[field], ho.Object[field]) {
			t.Errorf("%s %s: the chart's %s differs from config/monitoring's", ko.GetKind(), ko.GetName(), field)
		}
		if ko.GetKind() != "ServiceMonitor" {
			continue
		}
		sel, _, _ := unstructured.NestedStringMap(ko.Object, "spec", "selector", "matchLabels")
		scraped := 0
		for _, o := range defaults {
			if o.GetKind() != "Service" || !labelsMatch(sel, o.GetLabels()) {
				continue
			}
			ports, _, _ := unstructured.NestedSlice(o.Object, "spec", "ports")
			for _, p := range ports {
				if p.(map[string]any)["name"] == "metrics" {
					scraped++
				}
			}
		}
		if scraped != 1 {
			t.Errorf("ServiceMonitor %s selects %d Services with a port named metrics, want 1", ko.GetName(), scraped)
		}
	}
}

func labelsMatch(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return len(selector) > 0
}

// squeezeSpaces returns v with every run of whitespace in its strings
// replaced by one space.
func squeezeSpaces(v any) any {
	switch v := v.(type) {
	case string:
		return strings.Join(strings.Fields(v), " ")
	case map[string]any:
		out := map[string]any{}
		for k, e := range v {
			out[k] = squeezeSpaces(e)
		}
		return out
	case []any:
		out := make([]any, len(v))
		for i, e := range v {
			out[i] = squeezeSpaces(e)
		}
		return out
	}
	return v
}

// prometheusOperator is the Prometheus Operator release whose CRDs
// (ServiceMonitor, PrometheusRule) the monitoring objects are validated
// against; its Go module carries them under example/.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// TestMonitoringAppliesToARealAPIServer installs the Prometheus Operator's
// CRDs, then applies config/monitoring and the chart with every monitoring
// value on: the API server validates the ServiceMonitors and the
// PrometheusRule against the operator's schemas (server-side apply).
func TestMonitoringAppliesToARealAPIServer(t *testing.T) {
	cmd := exec.Command("go", "mod", "download", "-json", prometheusOperator)
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v\n%s", prometheusOperator, err, stderrOf(err))
	}
	var mod struct{ Dir string }
	if err := yaml.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download -json %s: %v\n%s", prometheusOperator, err, out)
	}
	kubeconfig := adminKubeconfig(t)
	kubectlRun := func(stdin []byte, args ...string) string {
		t.Helper()
		cmd := exec.Command(kubectl, append(args, "--kubeconfig", kubeconfig)...)
		cmd.Stdin = bytes.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	crds := filepath.Join(mod.Dir, "example", "prometheus-operator-crd")
	for _, crd := range []string{"servicemonitors", "prometheusrules"} {
		kubectlRun(nil, "apply", "--server-side", "-f", filepath.Join(crds, "monitoring.coreos.com_"+crd+".yaml"))
		kubectlRun(nil, "wait", "--for=condition=Established", "--timeout=60s", "crd/"+crd+".monitoring.coreos.com")
	}

	got := kubectlRun(nil, "apply", "--server-side", "-k", "monitoring")
	rendered, _ := helmTemplate(t, "--set", "monitoring.serviceMonitor.enabled=true",
		"--set", "monitoring.prometheusRule.enabled=true", "--set", "monitoring.grafanaDashboard.enabled=true")
	got += kubectlRun(rendered, "apply", "--server-side", "--force-conflicts", "--field-manager=helm", "-f", "-")
	for _, want := range []string{
		"servicemonitor.monitoring.coreos.com/codevector-gateway", "servicemonitor.monitoring.coreos.com/codevector-manager",
		"prometheusrule.monitoring.coreos.com/codevector", "configmap/codevector-dashboard",
	} {
		if strings.Count(got, want) != 2 {
			t.Errorf("kubectl apply output names %s %d times, want once for config/monitoring and once for the chart:\n%s", want, strings.Count(got, want), got)
		}
	}
}
