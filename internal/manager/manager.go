// Package manager assembles the manager process: the cache settings, the
// APIKey controller, health probes and leader election. The `codevector
// manager` command, dev mode and the tests all build it here, so tests run
// the manager exactly as it is deployed.
package manager

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	ctrlmanager "sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/keys"
)

// Options configure the manager; the zero value of a field means its default.
type Options struct {
	SystemNamespace         string
	RevealWindow            time.Duration
	RevealMode              controllers.RevealMode // default sealed
	Argon2                  keys.Params
	MaxConcurrentReconciles int
	LeaderElection          bool
	MetricsBindAddress      string // "0" disables
	HealthProbeBindAddress  string // "0" disables
	Clock                   clock.WithDelayedExecution
}

// Defaults used by the command line and by tests.
const (
	DefaultRevealWindow = 10 * time.Minute
	// DefaultQPS and DefaultBurst keep the client's rate limiter from being
	// what bounds key creation: each new key costs five requests (four
	// writes and an event), and argon2 alone allows roughly 70 keys/s on
	// two cores.
	DefaultQPS   = 300
	DefaultBurst = 600
)

// Scheme knows the built-in types and the APIKey types.
func Scheme() *k8sruntime.Scheme { return gatewayv1alpha1.NewScheme() }

// New builds a manager with the APIKey controller registered. Start it with
// mgr.Start(ctx).
func New(ctx context.Context, cfg *rest.Config, o Options) (ctrl.Manager, error) {
	o = o.withDefaults()
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	managed := labels.SelectorFromSet(labels.Set{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue})
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: Scheme(),
		Cache: cache.Options{
			ByObject: map[client.Object]cache.ByObject{
				// Only the Secrets this controller writes are cached, never
				// every Secret in the cluster: this client cannot see any
				// other Secret (reads of those go through APIReader). Their
				// data is dropped too: the controller only needs to know that
				// they exist, and the cache then holds no key material.
				&corev1.Secret{}: {Label: managed, Transform: stripSecretData},
				// APIKeys keep spec and status (status patches are computed
				// against the cached copy) but no annotations and no managed
				// fields: see stripAPIKey.
				&gatewayv1alpha1.APIKey{}: {Transform: stripAPIKey},
			},
		},
		Metrics:                 metricsserver.Options{BindAddress: o.MetricsBindAddress},
		HealthProbeBindAddress:  o.HealthProbeBindAddress,
		LeaderElection:          o.LeaderElection,
		LeaderElectionID:        "codevector-manager.gateway.codevector.io",
		LeaderElectionNamespace: o.SystemNamespace,
		// A new leader starts at once when the old one stops cleanly.
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return nil, fmt.Errorf("creating manager: %w", err)
	}
	m, err := controllers.NewMetrics(metrics.Registry)
	if err != nil {
		return nil, err
	}
	hasher, err := keys.NewHasher(o.Argon2, runtime.GOMAXPROCS(0), m.ObserveHashDuration)
	if err != nil {
		return nil, err
	}
	r := &controllers.APIKeyReconciler{
		Client:                  mgr.GetClient(),
		APIReader:               mgr.GetAPIReader(),
		Recorder:                mgr.GetEventRecorder("codevector-manager"),
		Clock:                   o.Clock,
		SystemNamespace:         o.SystemNamespace,
		RevealWindow:            o.RevealWindow,
		RevealMode:              o.RevealMode,
		Hasher:                  hasher,
		MaxConcurrentReconciles: o.MaxConcurrentReconciles,
		Metrics:                 m,
	}
	if err := r.SetupWithManager(ctx, mgr); err != nil {
		return nil, fmt.Errorf("setting up APIKey controller: %w", err)
	}
	if err := mgr.Add(peerCredential(cfg, o.SystemNamespace)); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

func (o Options) withDefaults() Options {
	o.SystemNamespace = cmp.Or(o.SystemNamespace, gatewayv1alpha1.DefaultSystemNamespace)
	o.RevealWindow = cmp.Or(o.RevealWindow, DefaultRevealWindow)
	o.RevealMode = cmp.Or(o.RevealMode, controllers.RevealSealed)
	o.Argon2 = cmp.Or(o.Argon2, keys.DefaultParams)
	if o.MaxConcurrentReconciles == 0 {
		// More workers than cores: while one key waits on the API server,
		// another is hashing.
		o.MaxConcurrentReconciles = 4 * runtime.GOMAXPROCS(0)
	}
	o.MetricsBindAddress = cmp.Or(o.MetricsBindAddress, "0")
	o.HealthProbeBindAddress = cmp.Or(o.HealthProbeBindAddress, "0")
	o.Clock = cmp.Or[clock.WithDelayedExecution](o.Clock, clock.RealClock{})
	return o
}

// stripAPIKey keeps in the cache only what the controller reads. Annotations
// are the users' (up to 256 KiB per object, kubectl's last-applied copy
// among them) and managed fields server-side apply's: cached whole, a few
// thousand keys with large annotations would push the manager past its
// memory limit (docs/benchmarks.md, "Manager memory with large annotations").
//
// The controller never reads either, and writes APIKeys only with merge
// patches computed between two copies of the cached object (finalizer,
// status), so a patch cannot mention, let alone remove, an annotation it
// never saw (TestUserAnnotationsSurviveTheController). Reading one would
// need an uncached read (APIReader), or a change here.
func stripAPIKey(obj any) (any, error) {
	if k, ok := obj.(*gatewayv1alpha1.APIKey); ok {
		k.Annotations = nil
		k.ManagedFields = nil
	}
	return obj, nil
}

func stripSecretData(obj any) (any, error) {
	if s, ok := obj.(*corev1.Secret); ok {
		s.Data, s.StringData = nil, nil
		s.ManagedFields = nil
	}
	return obj, nil
}

// peerCredential creates the Secret with the credential the gateway
// replicas authenticate each other with (gateway/mesh), once, if it is
// absent. The manager creates it rather than the gateways so that the
// internet-facing gateway needs no right to create Secrets in the system
// namespace: one that could would be able to plant a hash Secret.
func peerCredential(cfg *rest.Config, namespace string) ctrlmanager.RunnableFunc {
	return func(ctx context.Context) error {
		// The manager's own client caches only data-less copies of its
		// Secrets; this one reads the API server.
		c, err := client.New(cfg, client.Options{Scheme: Scheme()})
		if err != nil {
			return err
		}
		var last error
		err = wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
			_, last = mesh.EnsureCredential(ctx, c, namespace)
			return last == nil, nil
		})
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("creating the gateways' peer credential: %w (last: %v)", err, last)
		}
		return nil
	}
}
