package commands

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/codevector/codevector/internal/kubectlplugin"
)

// WriteFlagReference writes docs/flags.md: every command of the binary with
// its flags, read from the cobra tree itself, so the reference cannot
// drift from what the commands take (TestFlagReferenceIsCurrent; `make
// docs` rewrites it). Written here rather than with cobra's doc package,
// whose man-page half brings a dependency for one table per command.
func WriteFlagReference(w io.Writer) error {
	streams := genericiooptions.IOStreams{In: strings.NewReader(""), Out: io.Discard, ErrOut: io.Discard}
	root := newRootCommand(streams)
	kubectlplugin.UseKubectlConventions(root, streams)
	fmt.Fprint(w, `# Flag reference

Every command of the `+"`codevector`"+` binary and its flags, generated from
the commands themselves by `+"`make docs`"+` (a test fails when this page is stale).
What the flags do together is in [configuration.md](configuration.md). The
`+"`keys`"+` commands are also the kubectl plugin: `+"`kubectl apikey ...`"+`, with
kubectl's connection flags (`+"`-n`, `--context`, `--kubeconfig`, `--as`, ..."+`)
on every one of them, left out below.
`)
	var walk func(*cobra.Command) error
	walk = func(c *cobra.Command) error {
		if c.Hidden || c.Name() == "help" || c.Name() == "completion" && c.Parent() != root {
			return nil
		}
		if c != root && c.Runnable() {
			if err := writeCommand(w, c); err != nil {
				return err
			}
		}
		for _, sub := range c.Commands() {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// kubectlConnectionFlags are the genericclioptions flags every keys command
// has; the page names them once instead of in every table.
var kubectlConnectionFlags = map[string]bool{
	"namespace": true, "context": true, "kubeconfig": true, "cluster": true, "user": true, "server": true,
	"token": true, "as": true, "as-group": true, "as-uid": true, "certificate-authority": true,
	"client-certificate": true, "client-key": true, "insecure-skip-tls-verify": true, "tls-server-name": true,
	"request-timeout": true, "cache-dir": true, "disable-compression": true, "username": true, "password": true,
	"as-user-extra": true,
}

func writeCommand(w io.Writer, c *cobra.Command) error {
	fmt.Fprintf(w, "\n## %s\n\n%s\n\n```\n%s\n```\n", c.CommandPath(), c.Short, c.UseLine())
	var rows []string
	c.NonInheritedFlags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Name == "help" || kubectlConnectionFlags[f.Name] {
			return
		}
		name := "`--" + f.Name + "`"
		if f.Shorthand != "" {
			name = "`-" + f.Shorthand + "`, " + name
		}
		def := f.DefValue
		switch {
		case def == "" || def == "[]" || def == "0s" && f.Value.Type() != "duration":
			def = ""
		default:
			def = "`" + def + "`"
		}
		usage := strings.ReplaceAll(strings.ReplaceAll(f.Usage, "|", `\|`), "\n", " ")
		rows = append(rows, fmt.Sprintf("| %s | %s | %s | %s |", name, f.Value.Type(), def, usage))
	})
	if len(rows) == 0 {
		return nil
	}
	_, err := fmt.Fprintf(w, "\n| flag | type | default | |\n|---|---|---|---|\n%s\n", strings.Join(rows, "\n"))
	return err
}
