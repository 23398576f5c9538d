// Package commands holds the codevector subcommands and their flags: one
// cobra tree, so every command parses, documents and completes its flags
// the same way (--flag, completion for bash, zsh and fish).
package commands

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

const (
	// kubectlPlugin is the name under which the binary is the kubectl plugin
	// `kubectl apikey` (make build links bin/kubectl-apikey to it).
	kubectlPlugin = "kubectl-apikey"
	// kubectlPluginCompletion is the name under which kubectl's own shell
	// completion asks the plugin for its completions (kubectl 1.26+ runs
	// kubectl_complete-apikey ARGS... for `kubectl apikey ARGS<TAB>`); make
	// build links it to the binary too.
	kubectlPluginCompletion = "kubectl_complete-apikey"
)

// Main runs the command line args (args[0] is the program) and returns the
// exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}

	var root *cobra.Command
	rest := args[1:]
	switch filepath.Base(args[0]) {
	case kubectlPlugin:
		root = newKeysCommand(kubectlPluginRoot, streams, time.Now)
	case kubectlPluginCompletion:
		root = newKeysCommand(kubectlPluginRoot, streams, time.Now)
		rest = append([]string{cobra.ShellCompRequestCmd}, rest...)
	default:
		root = newRootCommand(streams)
	}
	return execute(ctx, root, rest, streams)
}

// execute runs root with args and prints its error, kubectl's way
// ("error: ..." on stderr, exit 1).
func execute(ctx context.Context, root *cobra.Command, args []string, streams genericiooptions.IOStreams) int {
	setCommon(root, streams)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		return 1
	}
	return 0
}

// newRootCommand is `codevector`: the manager, the gateway, dev mode and
// the keys CLI in one binary.
func newRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	root := &cobra.Command{
		Use:   "codevector",
		Short: "CodeVector: per-user API keys for an LLM gateway on Kubernetes",
		Long: `CodeVector: per-user API keys for an LLM gateway on Kubernetes.

One binary: the APIKey controller (manager), the gateway with its console and
docs (gateway), all of it on this machine (dev), and the keys CLI (keys, also
the kubectl plugin 'kubectl apikey' through a kubectl-apikey link).`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.AddCommand(
		newManagerCommand(),
		newGatewayCommand(),
		newDevCommand(),
		newKeysCommand("keys", streams, time.Now),
		newVersionCommand(),
	)
	return root
}

// setCommon gives a root command kubectl's conventions: output on the
// streams, a hint to --help after a flag error.
func setCommon(root *cobra.Command, streams genericiooptions.IOStreams) {
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help' for usage", err, cmd.CommandPath())
	})
}
