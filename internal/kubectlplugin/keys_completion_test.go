package kubectlplugin

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// bashCompletion is the bash-completion package's entry point, which
// cobra's (and kubectl's) completion scripts build on.
const bashCompletion = "/usr/share/bash-completion/bash_completion"

// TestCompletionInBash loads the completion scripts into a real bash and
// presses <TAB> after `revoke`: for `codevector keys`, for the plugin run
// directly (kubectl-apikey), and for `kubectl apikey` through kubectl's
// own completion, which asks kubectl_complete-apikey.
func TestCompletionInBash(t *testing.T) {
	if _, err := os.Stat(bashCompletion); err != nil {
		t.Fatalf("bash-completion is not installed (%v): run hack/install-test-deps.sh (make test does)", err)
	}
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns, other := e.Namespace(t), e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)
	userKubeconfig(t, e, "alice@example.com", other, editor, revealer)
	for _, name := range []string{"laptop", "lab-runner", "ci"} {
		e.IssueKey(t, ns, name)
	}
	e.IssueKey(t, other, "elsewhere")
	ci := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "ci"}, ci); err != nil {
		t.Fatal(err)
	}
	if err := e.Client.Patch(context.Background(), ci, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))); err != nil {
		t.Fatal(err)
	}
	bin := binaries(t)

	for _, tc := range []struct {
		name   string
		script string // what loads the completion
		words  []string
		want   []string // what COMPREPLY holds, each entry's first word
	}{
		{"codevector keys", "codevector completion bash", []string{"codevector", "keys", "revoke", "lap"}, []string{"laptop"}},
		{"all but the revoked", "codevector completion bash", []string{"codevector", "keys", "revoke", ""}, []string{"lab-runner", "laptop"}},
		{"get completes revoked keys too", "codevector completion bash", []string{"codevector", "keys", "get", "c"}, []string{"ci"}},
		{"-n picks the namespace", "codevector completion bash", []string{"codevector", "keys", "get", "-n", other, ""}, []string{"elsewhere"}},
		{"flags", "codevector completion bash", []string{"codevector", "keys", "list", "--sort"}, []string{"--sort-by"}},
		{"-o values", "codevector completion bash", []string{"codevector", "keys", "list", "-o", "js"}, []string{"json", "jsonpath", "jsonpath-as-json", "jsonpath-file"}},
		{"the plugin run directly", "kubectl-apikey completion bash", []string{"kubectl-apikey", "revoke", "lap"}, []string{"laptop"}},
		{"kubectl apikey, through kubectl", "kubectl completion bash", []string{"kubectl", "apikey", "revoke", "lap"}, []string{"laptop"}},
		{"kubectl apikey -n", "kubectl completion bash", []string{"kubectl", "apikey", "revoke", "--namespace", other, "e"}, []string{"elsewhere"}},
		{"the manager's flags", "codevector completion bash", []string{"codevector", "manager", "--leader"}, []string{"--leader-elect"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := bashComplete(t, bin, alice, tc.script, tc.words)
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("%s<TAB> completes to %q, want %q", strings.Join(tc.words, " "), got, tc.want)
			}
		})
	}
}

// bashComplete runs bash with bash-completion and the output of script
// loaded, completes words as <TAB> at the end of the line would, and
// returns the first word of each completion offered.
func bashComplete(t *testing.T, bin, kubeconfig, script string, words []string) []string {
	t.Helper()
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
	}
	prog := `COLUMNS=200 # the width completions with descriptions are laid out in
source ` + bashCompletion + `
source <(` + script + `)
COMP_WORDS=(` + strings.Join(quoted, " ") + `)
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
COMP_LINE="${COMP_WORDS[*]}"
COMP_POINT=${#COMP_LINE}
COMP_TYPE=9
fn=$(complete -p "${COMP_WORDS[0]}" | sed -n 's/.* -F \([^ ]*\) .*/\1/p')
[ -n "$fn" ] || { echo "no completion function for ${COMP_WORDS[0]}" >&2; exit 1; }
"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
for c in "${COMPREPLY[@]}"; do echo "$c"; done
`
	cmd := exec.Command("/usr/bin/bash", "--norc", "--noprofile", "-c", prog)
	cmd.Env = append(testenv.ProcessEnv(t, binaries(t)), "KUBECONFIG="+kubeconfig, "HOME="+t.TempDir())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bash: %v\n%s", err, stderr.String())
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(stdout.String()), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			got = append(got, f[0])
		}
	}
	return got
}
