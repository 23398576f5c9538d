package commands

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// keysCLI is `codevector keys` / `kubectl apikey`: the command-line face of
// the APIKey resource. Keys go to stdout (and nothing else does, so
// KEY=$(kubectl apikey create laptop) works); guidance and prompts go to
// stderr.
type keysCLI struct {
	prog   string // "codevector keys" or "kubectl apikey", for messages
	in     io.Reader
	out    io.Writer
	errOut io.Writer
	now    func() time.Time
}

func runKeys(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runKeysAs(ctx, "codevector keys", args, os.Stdin, stdout, stderr)
}

// runKeysAs runs the keys CLI under the name prog.
func runKeysAs(ctx context.Context, prog string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	// controller-runtime's client logs through a global logger; the CLI has
	// nothing to log, and an unset logger prints a warning of its own.
	ctrllog.SetLogger(logr.Discard())
	cli := &keysCLI{prog: prog, in: stdin, out: stdout, errOut: stderr, now: time.Now}
	if len(args) == 0 {
		cli.usage()
		return flag.ErrHelp
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "create":
		return cli.create(ctx, rest)
	case "list", "ls":
		return cli.list(ctx, rest)
	case "revoke":
		return cli.revoke(ctx, rest)
	case "reveal":
		return cli.reveal(ctx, rest)
	case "-h", "--help", "help":
		cli.usage()
		return flag.ErrHelp
	default:
		cli.usage()
		return fmt.Errorf("unknown command %q", sub)
	}
}

func (cli *keysCLI) usage() {
	fmt.Fprintf(cli.errOut, `Usage: %[1]s <command> [flags]

Commands:
  create NAME [--expires 30d|YYYY-MM-DD] [--display-name TEXT]
                        Create a key and print it, once, on stdout:
                        KEY=$(%[1]s create laptop)
  list [-A] [-o wide]   List keys: NAME PREFIX STATUS LAST USED EXPIRES
  revoke NAME [--yes]   Revoke a key: requests with it get 401 at once (cannot be undone)
  reveal NAME           Print a new key whose one-time copy nobody has read yet

Flags of every command, as in kubectl:
  -n, --namespace NS    Namespace of the keys (default: the context's namespace)
  --context NAME        kubeconfig context to use
  --kubeconfig FILE     kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)

Run '%[1]s <command> -h' for the flags of a command.
`, cli.prog)
}

// flagSet is a FlagSet for one subcommand with the kubectl-style
// connection flags bound to kf.
func (cli *keysCLI) flagSet(name, synopsis string, kf *kubeFlags) *flag.FlagSet {
	fs := flag.NewFlagSet(cli.prog+" "+name, flag.ContinueOnError)
	fs.SetOutput(cli.errOut)
	fs.Usage = func() {
		fmt.Fprintf(cli.errOut, "Usage: %s %s\n\nFlags:\n", fs.Name(), synopsis)
		fs.PrintDefaults()
	}
	fs.StringVar(&kf.kubeconfig, "kubeconfig", "", "Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config)")
	fs.StringVar(&kf.context, "context", "", "The kubeconfig context to use (default: the current context)")
	fs.StringVar(&kf.namespace, "namespace", "", "Namespace of the keys (default: the context's namespace, else default)")
	fs.StringVar(&kf.namespace, "n", "", "Shorthand for --namespace")
	return fs
}

// parseArgs parses flags wherever they stand among the positional
// arguments, as kubectl does (`create laptop -n team-a`), and checks that
// exactly the named positionals are there.
func parseArgs(fs *flag.FlagSet, args []string, names ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...) // everything after -- is positional
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < len(names):
		return nil, fmt.Errorf("missing %s (see '%s -h')", names[len(pos)], fs.Name())
	case len(pos) > len(names):
		return nil, fmt.Errorf("unexpected argument %q (see '%s -h')", pos[len(names)], fs.Name())
	}
	return pos, nil
}

// kubeFlags are the connection flags every subcommand takes.
type kubeFlags struct {
	kubeconfig, context, namespace string
}

// session is a connection to one cluster, in one namespace.
type session struct {
	c         client.Client
	namespace string
	server    string // the API server's URL, for messages
	context   string // the kubeconfig context, for messages
	prog      string
}

// connect loads the kubeconfig as kubectl does: --kubeconfig, else
// $KUBECONFIG, else ~/.kube/config (else the in-cluster configuration);
// --context picks the context; the namespace is -n, else the context's,
// else "default".
func (kf kubeFlags) connect(prog string) (*session, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kf.kubeconfig != "" {
		if _, err := os.Stat(kf.kubeconfig); err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kf.kubeconfig, err)
		}
		rules.ExplicitPath = kf.kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: kf.context}
	overrides.Context.Namespace = kf.namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			return nil, errors.New("no Kubernetes configuration found: pass --kubeconfig or set KUBECONFIG (for codevector dev: export KUBECONFIG=.codevector/dev/kubeconfig)")
		}
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	ns, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("loading the kubeconfig: %w", err)
	}
	s := &session{namespace: ns, server: cfg.Host, context: kf.context, prog: prog}
	if s.context == "" {
		if raw, err := loader.RawConfig(); err == nil {
			s.context = raw.CurrentContext
		}
	}
	// A bound on every request, so an unreachable server fails in seconds
	// rather than hanging the terminal.
	cfg.Timeout = 20 * time.Second
	cfg.UserAgent = "codevector-keys"
	// kubectl's own rate (client-go's default of 5/s is below the 10/s at
	// which create and reveal poll for the controller, and its limiter then
	// refuses a request it predicts would miss the --timeout deadline).
	cfg.QPS, cfg.Burst = 50, 300
	if s.c, err = client.New(cfg, client.Options{Scheme: gatewayv1alpha1.NewScheme()}); err != nil {
		return nil, s.explain(err, "connect", "")
	}
	return s, nil
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
