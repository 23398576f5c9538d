package kubectlplugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/klog/v2"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// kubectlPluginRoot is the Use of the keys command when it is the root of
// the kubectl plugin: cobra names the completion script after it, the
// executable kubectl runs.
const kubectlPluginRoot = Name

// defaultRequestTimeout bounds every request unless --request-timeout says
// otherwise, so an unreachable server fails in seconds rather than hanging
// the terminal (kubectl's own default is no bound).
const defaultRequestTimeout = "20s"

// keysCLI is `codevector keys` / `kubectl apikey`: the command-line face of
// the APIKey resource. Keys go to stdout (and nothing else does, so
// KEY=$(kubectl apikey create laptop) works); guidance and prompts go to
// stderr.
type keysCLI struct {
	prog    string // "codevector keys" or "kubectl apikey", for messages
	streams genericiooptions.IOStreams
	config  *genericclioptions.ConfigFlags // kubectl's connection flags
	now     func() time.Time
}

// runKeysAs runs the keys CLI as the kubectl plugin (prog "kubectl
// apikey") or as `codevector keys`, with args after the command's name.
func runKeysAs(ctx context.Context, prog string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return runKeysAt(ctx, time.Now, prog, args, stdin, stdout, stderr)
}

// runKeysAt is runKeysAs on the clock now, which tests use to act at a
// given point of a command (between its read of an APIKey and its write).
func runKeysAt(ctx context.Context, now func() time.Time, prog string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	streams := genericiooptions.IOStreams{In: stdin, Out: stdout, ErrOut: stderr}
	use := kubectlPluginRoot
	if prog != "kubectl apikey" {
		use = "keys"
	}
	cmd := NewCommand(use, streams, now)
	UseKubectlConventions(cmd, streams)
	cmd.SetArgs(args)
	return cmd.ExecuteContext(ctx)
}

// NewCommand is the keys CLI under the name use: "keys" under
// `codevector`, or Name as the root of the kubectl plugin, which also
// mounts rootExtras (the binary's version command: the plugin is a program
// of its own there).
func NewCommand(use string, streams genericiooptions.IOStreams, now func() time.Time, rootExtras ...*cobra.Command) *cobra.Command {
	cli := &keysCLI{prog: "codevector keys", streams: streams, now: now}
	cli.config = genericclioptions.NewConfigFlags(true).WithWarningPrinter(streams)
	cli.config.Timeout = ptr.To(defaultRequestTimeout)

	cmd := &cobra.Command{
		Use:   use,
		Short: "Create, list, get, revoke and reveal API keys (also kubectl apikey)",
		Long: `Create, list, get, revoke and reveal CodeVector API keys (APIKey objects).

A key is shown once, at creation, on stdout and alone:
  KEY=$(%[1]s create laptop)
Everything else the commands say goes to stderr. Every kubectl connection
flag works (--context, -n, --as, --token, ...); the kubeconfig is
--kubeconfig, else $KUBECONFIG, else ~/.kube/config.`,
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	if use == kubectlPluginRoot {
		cli.prog = "kubectl apikey"
		cmd.Annotations = map[string]string{cobra.CommandDisplayNameAnnotation: cli.prog}
		cmd.AddCommand(rootExtras...)
	}
	cmd.Long = fmt.Sprintf(cmd.Long, cli.prog)
	cli.config.AddFlags(cmd.PersistentFlags())
	cli.registerConnectionCompletions(cmd)

	cmd.AddCommand(
		cli.newCreateCommand(),
		cli.newListCommand(),
		cli.newGetCommand(),
		cli.newRevokeCommand(),
		cli.newRevealCommand(),
		cli.newRotateCommand(),
		cli.newDeleteCommand(),
	)
	return cmd
}

// exactArgs accepts exactly the named positional arguments, and says which
// is missing or unexpected.
func exactArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		switch {
		case len(args) < len(names):
			return fmt.Errorf("missing %s (see '%s --help')", names[len(args)], cmd.CommandPath())
		case len(args) > len(names):
			return fmt.Errorf("unexpected argument %q (see '%s --help')", args[len(names)], cmd.CommandPath())
		}
		return nil
	}
}

var errNoConfig = errors.New("no Kubernetes configuration found: pass --kubeconfig or set KUBECONFIG (for codevector dev: export KUBECONFIG=.codevector/dev/kubeconfig)")

// session is a connection to one cluster, in one namespace.
type session struct {
	c         client.WithWatch
	namespace string
	server    string // the API server's URL, for messages
	context   string // the kubeconfig context, for messages
	prog      string
}

// connect loads the kubeconfig as kubectl does, from the same flags:
// --kubeconfig, else $KUBECONFIG, else ~/.kube/config (else the in-cluster
// configuration); --context, --cluster, --user, --server, --token, --as
// and the rest override it; the namespace is -n, else the context's, else
// "default".
func (cli *keysCLI) connect() (*session, error) {
	if kc := *cli.config.KubeConfig; kc != "" {
		if _, err := os.Stat(kc); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kc, err)
		}
	}
	// The client libraries log what they retry and give up on (klog), and
	// controller-runtime's client warns when its logger is unset; the CLI
	// reports errors itself, once, and a stray log line would garble a
	// shell's completion.
	ctrllog.SetLogger(logr.Discard())
	klog.SetLogger(logr.Discard())

	loader := cli.config.ToRawKubeConfigLoader()
	// kubectl falls back to http://localhost:8080 with no configuration at
	// all; say what is missing instead.
	if raw, err := loader.RawConfig(); err == nil && clientcmdapi.IsConfigEmpty(&raw) &&
		*cli.config.APIServer == "" && os.Getenv("KUBERNETES_SERVICE_HOST") == "" {
		return nil, errNoConfig
	}
	cfg, err := cli.config.ToRESTConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errNoConfig
		}
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	s := &session{namespace: ns, server: cfg.Host, context: *cli.config.Context, prog: cli.prog}
	if s.context == "" {
		if raw, err := loader.RawConfig(); err == nil {
			s.context = raw.CurrentContext
		}
	}
	cfg.UserAgent = "codevector-keys"
	// kubectl's own rate (client-go's default of 5/s is below the 10/s at
	// which create and reveal poll for the controller, and its limiter then
	// refuses a request it predicts would miss the --timeout deadline).
	cfg.QPS, cfg.Burst = 50, 300
	// kubectl's discovery, cached under --cache-dir as kubectl caches it.
	mapper, err := cli.config.ToRESTMapper()
	if err != nil {
		return nil, s.explain(err, "connect", "")
	}
	if s.c, err = client.NewWithWatch(cfg, client.Options{Scheme: gatewayv1alpha1.NewScheme(), Mapper: mapper}); err != nil {
		return nil, s.explain(err, "connect", "")
	}
	return s, nil
}

// connectToKey connects and reads the APIKey name: how the subcommands
// that act on one existing key begin.
func (cli *keysCLI) connectToKey(ctx context.Context, name string) (*session, *gatewayv1alpha1.APIKey, error) {
	s, err := cli.connect()
	if err != nil {
		return nil, nil, err
	}
	key, err := s.getKey(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	return s, key, nil
}

// getKey reads the APIKey name from the API server, with an error that
// says what to do when it cannot.
func (s *session) getKey(ctx context.Context, name string) (*gatewayv1alpha1.APIKey, error) {
	key := &gatewayv1alpha1.APIKey{}
	if err := s.c.Get(ctx, types.NamespacedName{Namespace: s.namespace, Name: name}, key); err != nil {
		return nil, s.explain(err, "get", name)
	}
	return key, nil
}
