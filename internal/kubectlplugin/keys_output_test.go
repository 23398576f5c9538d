package kubectlplugin

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// kubectl runs the machine's kubectl with a kubeconfig.
func kubectl(t *testing.T, kubeconfig string, args ...string) string {
	t.Helper()
	cmd := exec.Command("/usr/bin/kubectl", append(args, "--kubeconfig", kubeconfig)...)
	out, err := cmd.Output()
	if err != nil {
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, exit.Stderr)
		}
		t.Fatalf("kubectl %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestKeysCLIOutput reads every output format back with a real parser,
// and compares the machine formats with what `kubectl get apikeys` prints
// for the same objects.
func TestKeysCLIOutput(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns, other := e.Namespace(t), e.Namespace(t)
	ctx := context.Background()
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)
	admin := e.KubeconfigFor(t, "root@example.com", "system:masters")

	// Keys: alpha (labelled, with a budget and usage), beta, alice's own
	// laptop (made with the CLI), and one in another namespace.
	alpha, alphaKey := e.IssueKey(t, ns, "alpha", func(k *gatewayv1alpha1.APIKey) {
		k.Labels = map[string]string{"team": "ml"}
		k.Spec.DisplayName = "Alpha bot"
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "50", Period: gatewayv1alpha1.BudgetPeriod("month")}
	})
	_, betaKey := e.IssueKey(t, ns, "beta")
	_, elsewhereKey := e.IssueKey(t, other, "elsewhere")
	laptopKey, stderr, err := keysRun(alice, "", "create", "laptop")
	if err != nil {
		t.Fatalf("create laptop: %v\n%s", err, stderr)
	}
	plaintexts := []string{alphaKey.Reveal(), betaKey.Reveal(), elsewhereKey.Reveal(), strings.TrimSpace(laptopKey)}
	usage := []byte(`{"status":{"usage":{"periodStart":"2026-06-01T00:00:00Z","requests":12,"inputTokens":3400,"outputTokens":900,"usd":"3.40","summary":"$3.40 of $50"}}}`)
	if err := e.Client.Status().Patch(ctx, alpha, client.RawPatch(types.MergePatchType, usage)); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		k := &gatewayv1alpha1.APIKey{}
		if err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "alpha"}, k); err != nil {
			return err
		}
		if k.Status.Budget != "$50/month" || k.Status.Usage == nil {
			return fmt.Errorf("status.budget %q, usage %+v", k.Status.Budget, k.Status.Usage)
		}
		return nil
	})
	run := func(kubeconfig string, args ...string) string {
		t.Helper()
		stdout, stderr, err := keysRun(kubeconfig, "", args...)
		if err != nil {
			t.Fatalf("kubectl apikey %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		if leak := testenv.KeyLeaks(strings.Join(args, " "), stdout+"x", plaintexts); leak != nil {
			t.Error(leak)
		}
		return stdout
	}

	// The tables: default, wide, -A, --no-headers, newest first unless --sort-by.
	out := run(alice, "list", "-o", "wide")
	if got := strings.Join(strings.Fields(strings.SplitN(out, "\n", 2)[0]), " "); got != "NAME PREFIX STATUS LAST USED EXPIRES USAGE BUDGET OWNER DISPLAY NAME" {
		t.Errorf("list -o wide header = %q", got)
	}
	if !regexp.MustCompile(`(?m)^alpha\s+cvk_\w{8}\s+Active\s+Never\s+-\s+\$3\.40 of \$50\s+\$50/month\s+\S+\s+Alpha bot$`).MatchString(out) {
		t.Errorf("list -o wide lacks alpha's usage, budget or display name:\n%s", out)
	}
	var all gatewayv1alpha1.APIKeyList
	if err := e.Client.List(ctx, &all, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all.Items, func(a, b gatewayv1alpha1.APIKey) int {
		return cmp.Or(b.CreationTimestamp.Compare(a.CreationTimestamp.Time), cmp.Compare(a.Name, b.Name))
	})
	var newestFirst []string
	for _, k := range all.Items {
		newestFirst = append(newestFirst, k.Name)
	}
	if names := firstColumn(run(alice, "list", "--no-headers")); !reflect.DeepEqual(names, newestFirst) {
		t.Errorf("list --no-headers: names %v, want newest first (then by name): %v", names, newestFirst)
	}
	if names := firstColumn(run(alice, "list", "--no-headers", "--sort-by", ".metadata.name")); !reflect.DeepEqual(names, []string{"alpha", "beta", "laptop"}) {
		t.Errorf("list --sort-by .metadata.name: %v", names)
	}
	if names := firstColumn(run(alice, "list", "--no-headers", "-l", "team=ml")); !reflect.DeepEqual(names, []string{"alpha"}) {
		t.Errorf("list -l team=ml: %v", names)
	}
	if names := firstColumn(run(alice, "list", "--no-headers", "--owner", "alice@example.com")); !reflect.DeepEqual(names, []string{"laptop"}) {
		t.Errorf("list --owner alice@example.com: %v", names)
	}
	out = run(admin, "list", "-Ao", "wide", "--sort-by", "{.metadata.name}")
	for _, row := range []string{`(?m)^NAMESPACE\s+NAME\s+PREFIX`, `(?m)^` + ns + `\s+alpha\s+`, `(?m)^` + other + `\s+elsewhere\s+`} {
		if !regexp.MustCompile(row).MatchString(out) {
			t.Errorf("list -Ao wide does not match %s:\n%s", row, out)
		}
	}

	// JSON and YAML decode, strictly, into the API types, and say what
	// kubectl get says.
	var fromKubectl, fromJSON, fromYAML gatewayv1alpha1.APIKeyList
	decodeStrict(t, "kubectl get -o json", kubectl(t, alice, "get", "apikeys", "-o", "json"), &fromKubectl, json.Unmarshal)
	decodeStrict(t, "list -o json", run(alice, "list", "-o", "json", "--sort-by", ".metadata.name"), &fromJSON, json.Unmarshal)
	decodeStrict(t, "list -o yaml", run(alice, "list", "-o", "yaml", "--sort-by", ".metadata.name"), &fromYAML, yamlUnmarshal)
	if len(fromKubectl.Items) != 3 || !reflect.DeepEqual(fromJSON.Items, fromKubectl.Items) || !reflect.DeepEqual(fromYAML.Items, fromKubectl.Items) {
		t.Errorf("list -o json/yaml differ from kubectl get apikeys -o json:\njson %+v\nyaml %+v\nkubectl %+v", fromJSON.Items, fromYAML.Items, fromKubectl.Items)
	}
	var oneJSON, oneYAML, oneKubectl gatewayv1alpha1.APIKey
	decodeStrict(t, "get -o json", run(alice, "get", "alpha", "-o", "json"), &oneJSON, json.Unmarshal)
	decodeStrict(t, "get -o yaml", run(alice, "get", "alpha", "-o", "yaml"), &oneYAML, yamlUnmarshal)
	decodeStrict(t, "kubectl get apikey alpha -o yaml", kubectl(t, alice, "get", "apikey", "alpha", "-o", "yaml"), &oneKubectl, yamlUnmarshal)
	if !reflect.DeepEqual(oneJSON, oneKubectl) || !reflect.DeepEqual(oneYAML, oneKubectl) {
		t.Errorf("get alpha -o json/yaml differ from kubectl's:\njson %+v\nyaml %+v\nkubectl %+v", oneJSON, oneYAML, oneKubectl)
	}
	if oneJSON.Kind != "APIKey" || oneJSON.APIVersion != gatewayv1alpha1.GroupVersion.String() || oneJSON.ManagedFields != nil || oneJSON.Status.Usage.Summary != "$3.40 of $50" {
		t.Errorf("get alpha -o json: kind %q apiVersion %q, managedFields %v, usage %+v", oneJSON.Kind, oneJSON.APIVersion, oneJSON.ManagedFields, oneJSON.Status.Usage)
	}

	// jsonpath, name and custom-columns: byte for byte what kubectl prints.
	for _, tc := range []struct{ ours, theirs []string }{
		{[]string{"get", "alpha", "-o", "jsonpath={.status.prefix} {.spec.owner} {.status.usage.summary}"}, []string{"get", "apikey", "alpha", "-o", "jsonpath={.status.prefix} {.spec.owner} {.status.usage.summary}"}},
		{[]string{"list", "--sort-by", ".metadata.name", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase} {.status.budget}{"\n"}{end}`},
			[]string{"get", "apikeys", "--sort-by", ".metadata.name", "-o", `jsonpath={range .items[*]}{.metadata.name}={.status.phase} {.status.budget}{"\n"}{end}`}},
		{[]string{"list", "--sort-by", ".metadata.name", "-o", "name"}, []string{"get", "apikeys", "-o", "name"}},
		{[]string{"get", "beta", "-o", "name"}, []string{"get", "apikey", "beta", "-o", "name"}},
		{[]string{"list", "--sort-by", ".metadata.name", "-o", "custom-columns=NAME:.metadata.name,PREFIX:{.status.prefix},BUDGET:.status.budget,LABELS:.metadata.labels.team"},
			[]string{"get", "apikeys", "--sort-by", ".metadata.name", "-o", "custom-columns=NAME:.metadata.name,PREFIX:{.status.prefix},BUDGET:.status.budget,LABELS:.metadata.labels.team"}},
		{[]string{"list", "--sort-by", ".status.prefix", "--no-headers", "-o", "custom-columns=PREFIX:.status.prefix"},
			[]string{"get", "apikeys", "--sort-by", ".status.prefix", "--no-headers", "-o", "custom-columns=PREFIX:.status.prefix"}},
	} {
		ours, theirs := run(alice, tc.ours...), kubectl(t, alice, tc.theirs...)
		if ours != theirs || ours == "" {
			t.Errorf("kubectl apikey %s:\n%q\nkubectl %s:\n%q", strings.Join(tc.ours, " "), ours, strings.Join(tc.theirs, " "), theirs)
		}
	}

	// get NAME: the key in full, but never the key.
	out = run(admin, "get", "alpha", "-n", ns)
	for _, want := range []string{"Name:", "alpha", "Owner:", alpha.Spec.Owner, "Display name:", "Alpha bot", "Prefix:", alpha.Status.Prefix,
		"Status:", "Active", "Budget:", "$50/month", "Usage:", "$3.40 of $50 since 2026-06-01T00:00:00Z", "12 requests, 3400 input tokens, 900 output tokens, $3.40",
		"Reveal:", "Consumed", "Conditions:", "Ready", "True"} {
		if !strings.Contains(out, want) {
			t.Errorf("get alpha lacks %q:\n%s", want, out)
		}
	}
	if out := run(alice, "get", "laptop", "-o", "wide"); !regexp.MustCompile(`(?m)^laptop\s+cvk_\w{8}\s+Active\s+Never\s+-\s+-\s+-\s+alice@example.com\s+-$`).MatchString(out) {
		t.Errorf("get laptop -o wide:\n%s", out)
	}

	// Mistakes are caught before any request, with kubectl's words.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-o", "table"}, `unknown output format "table"`},
		{[]string{"list", "-o", "custom-columns="}, "needs columns"},
		{[]string{"list", "-o", "jsonpath={.items[*"}, "error parsing jsonpath"},
		{[]string{"list", "-l", "team in ("}, "-l team in ("},
		{[]string{"list", "--sort-by", "{{.a}}"}, "--sort-by"},
		{[]string{"get", "nothing"}, `APIKey "nothing" not found in namespace "` + ns + `"`},
	} {
		if _, _, err := keysRun(alice, "", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want one saying %q", strings.Join(tc.args, " "), err, tc.want)
		}
	}
	// An empty list is a sentence on stderr for people, an empty List for
	// programs.
	stdout, stderr, err := keysRun(alice, "", "list", "-l", "team=none")
	if err != nil || stdout != "" || !strings.Contains(stderr, "No API keys found in namespace "+ns) {
		t.Errorf("empty list: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	var empty gatewayv1alpha1.APIKeyList
	decodeStrict(t, "empty list -o json", run(alice, "list", "-l", "team=none", "-o", "json"), &empty, json.Unmarshal)
	if empty.Kind != "List" || len(empty.Items) != 0 {
		t.Errorf("empty list -o json: %+v", empty)
	}
}

// decodeStrict decodes a document that must hold nothing the type lacks.
func decodeStrict(t *testing.T, what, doc string, into any, unmarshal func([]byte, any) error) {
	t.Helper()
	if err := unmarshal([]byte(doc), into); err != nil {
		t.Fatalf("%s does not decode: %v\n%s", what, err, doc)
	}
	// sigs.k8s.io/yaml reads JSON too: a second, strict pass refuses any
	// field the types lack.
	if err := yaml.UnmarshalStrict([]byte(doc), reflect.New(reflect.TypeOf(into).Elem()).Interface()); err != nil {
		t.Errorf("%s has fields the API types lack: %v", what, err)
	}
}

func yamlUnmarshal(doc []byte, into any) error { return yaml.Unmarshal(doc, into) }

// firstColumn is the first word of each line.
func firstColumn(table string) []string {
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			out = append(out, f[0])
		}
	}
	return out
}
