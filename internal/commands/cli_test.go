package commands

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/codevector/codevector/internal/kubectlplugin"
)

// runCodevector runs `codevector ARGS` in process.
func runCodevector(args ...string) (stdout, stderr string, code int) {
	var o, e bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &o, ErrOut: &e}
	code = kubectlplugin.Execute(context.Background(), newRootCommand(streams), args, streams)
	return o.String(), e.String(), code
}

// TestHelpSpellsFlagsAsKubectlDoes: every command's help prints its flags
// as --flag (the standard library's -flag was the bug), and takes them so.
func TestHelpSpellsFlagsAsKubectlDoes(t *testing.T) {
	singleDash := regexp.MustCompile(`(?m)^\s+-[a-z][a-z-]+`)
	for _, tc := range []struct {
		args  []string
		wants []string
	}{
		{[]string{"manager", "--help"}, []string{"--leader-elect", "--argon2-memory", "--reveal-mode", "--zap-log-level"}},
		{[]string{"gateway", "--help"}, []string{"--providers", "--console-auth", "--peer-listen", "--stale-index", "--stale-index-after"}},
		{[]string{"dev", "--help"}, []string{"--listen", "--state-dir", "--log-level"}},
		{[]string{"keys", "create", "--help"}, []string{"--expires", "--display-name", "--models", "--rpm", "--tpm", "--concurrency", "--budget", "--timeout", "-n, --namespace", "--as-group", "--request-timeout"}},
		{[]string{"keys", "list", "--help"}, []string{"-o, --output", "--no-headers", "-l, --selector", "-A, --all-namespaces", "--owner", "--sort-by", "--token", "--server"}},
		{[]string{"keys", "revoke", "--help"}, []string{"-y, --yes", "--confirm-timeout duration", "--no-wait", "refused by 3 of 3 gateway replicas", "--as string"}},
	} {
		stdout, stderr, code := runCodevector(tc.args...)
		if code != 0 {
			t.Errorf("codevector %s: exit %d\n%s", strings.Join(tc.args, " "), code, stderr)
		}
		for _, w := range tc.wants {
			if !strings.Contains(stdout, w) {
				t.Errorf("codevector %s does not show %q:\n%s", strings.Join(tc.args, " "), w, stdout)
			}
		}
		if m := singleDash.FindString(stdout); m != "" {
			t.Errorf("codevector %s shows a flag with one dash: %q", strings.Join(tc.args, " "), m)
		}
	}
	if _, stderr, code := runCodevector("gateway", "--max-conns-per-client=0", "--console-auth", "dev", "--help"); code != 0 {
		t.Errorf("gateway flags with = and with a space: exit %d\n%s", code, stderr)
	}
	if _, stderr, code := runCodevector("manager", "-leader-elect"); code == 0 || !strings.Contains(stderr, "unknown shorthand flag") {
		t.Errorf("manager -leader-elect: exit %d, stderr %q, want kubectl's refusal of a one-dash long flag", code, stderr)
	}
	// A mode is checked when the flags are parsed, before the manager
	// connects to anything.
	if _, stderr, code := runCodevector("manager", "--reveal-mode", "open"); code == 0 || !strings.Contains(stderr, `invalid argument "open" for "--reveal-mode" flag: want sealed or plain`) {
		t.Errorf("manager --reveal-mode open: exit %d, stderr %q, want the modes listed", code, stderr)
	}
}

func TestVersionAndCompletionScripts(t *testing.T) {
	stdout, _, code := runCodevector("version")
	if code != 0 || !regexp.MustCompile(`^codevector dev \(commit \S+, go1\.\d+`).MatchString(stdout) {
		t.Errorf("codevector version: exit %d, %q", code, stdout)
	}
	defer func(v, c string) { version, commit = v, c }(version, commit)
	version, commit = "v1.2.3", "0123abc"
	if stdout, _, _ := runCodevector("version"); !strings.HasPrefix(stdout, "codevector v1.2.3 (commit 0123abc, ") {
		t.Errorf("codevector version with -ldflags -X values: %q", stdout)
	}
	// No zsh or fish on the test machines: the scripts are checked for
	// what makes them work, asking the binary itself with __complete.
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, stderr, code := runCodevector("completion", shell)
		if code != 0 || !strings.Contains(stdout, "__complete") {
			t.Errorf("codevector completion %s: exit %d, %d bytes\n%s", shell, code, len(stdout), stderr)
		}
	}
	var o, e bytes.Buffer
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: &o, ErrOut: &e}
	plugin := kubectlplugin.NewCommand(kubectlplugin.Name, streams, time.Now, newVersionCommand())
	if code := kubectlplugin.Execute(context.Background(), plugin, []string{"completion", "zsh"}, streams); code != 0 || !strings.Contains(o.String(), "#compdef kubectl-apikey") {
		t.Errorf("kubectl apikey completion zsh: exit %d\n%s%s", code, e.String(), o.String()[:min(len(o.String()), 200)])
	}
}
