// Package kubectlplugin is the keys CLI: the kubectl plugin `kubectl
// apikey`, also mounted as `codevector keys`. It talks to the API server
// only, as its user, and never links the manager or the gateway: the
// process commands (manager, gateway, dev, version) are internal/commands,
// which mounts this tree.
package kubectlplugin

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

const (
	// Name is the name under which the binary is the kubectl plugin
	// `kubectl apikey` (make build links bin/kubectl-apikey to it).
	Name = "kubectl-apikey"
	// CompletionName is the name under which kubectl's own shell
	// completion asks the plugin for its completions (kubectl 1.26+ runs
	// kubectl_complete-apikey ARGS... for `kubectl apikey ARGS<TAB>`); make
	// build links it to the binary too.
	CompletionName = "kubectl_complete-apikey"
)

// Execute runs root with args and prints its error, kubectl's way
// ("error: ..." on stderr, exit 1), and returns the exit code. The
// codevector root runs the same way, so both faces of the binary behave
// alike.
func Execute(ctx context.Context, root *cobra.Command, args []string, streams genericiooptions.IOStreams) int {
	UseKubectlConventions(root, streams)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(streams.ErrOut, "error: %v\n", err)
		return 1
	}
	return 0
}

// UseKubectlConventions gives a root command kubectl's conventions: output
// on the streams, a hint to --help after a flag error.
func UseKubectlConventions(root *cobra.Command, streams genericiooptions.IOStreams) {
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return fmt.Errorf("%w\nSee '%s --help' for usage", err, cmd.CommandPath())
	})
}
