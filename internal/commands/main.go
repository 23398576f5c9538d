// Package commands holds the codevector process commands (manager,
// gateway, dev, version) and their flags, and the root that mounts the
// keys CLI (internal/kubectlplugin) as `codevector keys`: one cobra tree,
// so every command parses, documents and completes its flags the same way
// (--flag, completion for bash, zsh and fish).
package commands

import (
	"context"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"github.com/codevector/codevector/internal/kubectlplugin"
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
	case kubectlplugin.Name:
		root = kubectlplugin.NewCommand(kubectlplugin.Name, streams, time.Now, newVersionCommand())
	case kubectlplugin.CompletionName:
		root = kubectlplugin.NewCommand(kubectlplugin.Name, streams, time.Now, newVersionCommand())
		rest = append([]string{cobra.ShellCompRequestCmd}, rest...)
	default:
		root = newRootCommand(streams)
	}
	return kubectlplugin.Execute(ctx, root, rest, streams)
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
		kubectlplugin.NewCommand("keys", streams, time.Now),
		newVersionCommand(),
	)
	return root
}
