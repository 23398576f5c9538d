package commands

import (
	"context"
	"flag"
	"fmt"

	"github.com/spf13/cobra"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

// managerFlags are `codevector manager`'s flags, beyond manager.Options.
type managerFlags struct {
	o          manager.Options
	kubeconfig string
	qps        float64
	burst      int
	memory     uint
	time       uint
	zap        zap.Options
}

func newManagerCommand() *cobra.Command {
	f := &managerFlags{}
	cmd := &cobra.Command{
		Use:   "manager",
		Short: "Run the APIKey controller",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return f.run(cmd.Context()) },
	}
	fs := cmd.Flags()
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then in-cluster config)")
	fs.BoolVar(&f.o.LeaderElection, "leader-elect", false, "Elect a leader so only one replica reconciles at a time")
	fs.StringVar(&f.o.MetricsBindAddress, "metrics-bind-address", ":8080", "Address of the Prometheus /metrics endpoint, or 0 to disable")
	fs.StringVar(&f.o.HealthProbeBindAddress, "health-probe-bind-address", ":8081", "Address of /healthz and /readyz, or 0 to disable")
	fs.UintVar(&f.memory, "argon2-memory", uint(keys.DefaultParams.Memory), "argon2id memory per hash, in KiB")
	fs.UintVar(&f.time, "argon2-time", uint(keys.DefaultParams.Time), "argon2id passes per hash")
	fs.DurationVar(&f.o.RevealWindow, "reveal-window", manager.DefaultRevealWindow, "How long a new key can be revealed before its reveal Secret is deleted")
	fs.Var(oneOf(&f.o.RevealMode, controllers.RevealSealed, controllers.RevealSealed, controllers.RevealPlain), "reveal-mode", "How a new key reaches its owner: sealed (only to the public key its owner's kubectl or console request supplies; a key applied without one waits for 'kubectl apikey reveal') or plain (a key its owner applies without a public key is issued at once, in plaintext, readable by anyone with Secret read in its namespace during the reveal window; a key created for someone else still waits for its owner's reveal, sealed)")
	fs.StringVar(&f.o.SystemNamespace, "system-namespace", gatewayv1alpha1.DefaultSystemNamespace, "Namespace of the hash Secrets (and of the leader election lease)")
	fs.IntVar(&f.o.MaxConcurrentReconciles, "max-concurrent-reconciles", 0, "APIKeys reconciled at once (default 4 x CPUs)")
	fs.Float64Var(&f.qps, "kube-api-qps", manager.DefaultQPS, "Sustained requests per second to the API server")
	fs.IntVar(&f.burst, "kube-api-burst", manager.DefaultBurst, "Burst of requests to the API server")
	// controller-runtime's zap flags (--zap-log-level, ...) exist only as a
	// standard library FlagSet; pflag adopts them with -- spellings.
	zapFlags := flag.NewFlagSet("zap", flag.ContinueOnError)
	f.zap.BindFlags(zapFlags)
	fs.AddGoFlagSet(zapFlags)
	return cmd
}

func (f *managerFlags) run(ctx context.Context) error {
	o := f.o
	o.Argon2 = keys.Params{Memory: uint32(f.memory), Time: uint32(f.time), Threads: keys.DefaultParams.Threads}
	if err := o.Argon2.Validate(); err != nil {
		return fmt.Errorf("--argon2-memory/--argon2-time: %w", err)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))

	cfg, err := restConfig(f.kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(f.qps), f.burst
	mgr, err := manager.New(ctx, cfg, o)
	if err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("Starting manager", "systemNamespace", o.SystemNamespace, "revealWindow", o.RevealWindow.String(), "revealMode", o.RevealMode, "argon2", o.Argon2)
	return mgr.Start(ctx)
}
