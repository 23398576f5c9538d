// Package server assembles the gateway process: the watch-fed key index,
// authentication, usage recording, the provider proxy and the operational
// endpoints, routed on one listener (metrics on a second one). Each request to /gateway/ passes
// request ID -> authenticate -> record usage -> proxy.
package server

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/docs"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/replicas"
	"github.com/codevector/codevector/gateway/usage"
)

// Options configure a gateway; zero values mean the defaults.
type Options struct {
	Providers        *providers.Providers
	SystemNamespace  string
	Namespaces       []string      // APIKey namespaces to watch; empty = all
	LastUsedInterval time.Duration // default 30s
	Auth             auth.Options
	Proxy            proxy.Options
	Logger           *slog.Logger
	// ListWait is how long from its start a replica waits for every APIKey
	// to be listed before it reports ready without them (once it holds
	// every hash). Default DefaultListWait.
	ListWait time.Duration
	// APIServerProbeInterval is how often reachability of the API server is
	// checked for /readyz and metrics. Default 5s.
	APIServerProbeInterval time.Duration
	// StaleIndexAfter is how long a replica may hear from neither the API
	// server nor a current peer before its index is stale, and StaleIndex
	// what it does then (stale.go). Defaults DefaultStaleIndexAfter and
	// StaleServe.
	StaleIndexAfter time.Duration
	StaleIndex      StaleIndexMode
	// Timeouts that keep slow or stalled clients from pinning goroutines
	// and memory (DefaultTimeouts). None limits how long a response
	// streams.
	Timeouts Timeouts
	// MaxConnsPerClient caps the connections one client address (an IPv6
	// /64) may hold open at once; past it, new connections are closed as
	// soon as they are accepted. Default DefaultMaxConnsPerClient;
	// negative means no cap.
	MaxConnsPerClient int
	// Console configures the web console at /api-keys and its API.
	// Console.Namespace defaults to SystemNamespace.
	Console console.Options
	// Peers are the replicas this one shares per-key counters with.
	Peers PeerOptions
	// BudgetFailureMode and LimitsFailureMode say what happens to a key's
	// request when its counters cannot be reached (policy.FailureMode):
	// by default budgets fail closed, per-minute and concurrency limits
	// open.
	BudgetFailureMode, LimitsFailureMode policy.FailureMode
	// ReplicaName names this replica's Lease, by which `kubectl apikey
	// revoke` and the console learn that it refuses a revoked key
	// (gateway/replicas). Default replicas.ReplicaName(): the pod's name.
	ReplicaName string
	// PodIP is this replica's pod IP (the POD_IP environment variable),
	// advertised to peers found through Kubernetes.
	PodIP string
	// MetricsListener is where /metrics is served, on its own: never on
	// the public listener, since its series name owners and namespaces
	// (`codevector gateway --metrics-listen`, loopback by default). Nil
	// serves metrics nowhere; Registry still holds them.
	MetricsListener net.Listener
	// Clock is the gateway's one clock: key expiry, the failure limits and
	// the tarpit (unless Auth.Clock is set), last-use times and their
	// writes, and the console (unless Console.Clock is set). Tests share a
	// fake one with the manager and step it. Default clock.RealClock{}.
	Clock clock.WithTickerAndDelayedExecution
}

// DefaultQPS and DefaultBurst bound the gateway's own requests to the API
// server: watches at start, last-use writes and console actions.
const (
	DefaultQPS   = 100
	DefaultBurst = 200
)

// Gateway is one gateway replica.
type Gateway struct {
	opts    Options
	log     *slog.Logger
	watches *watches
	client  client.WithWatch
	index   *keyindex.Index
	// replica publishes how far the index has applied the APIKey watches
	// (gateway/replicas).
	replica *replicas.Publisher
	auth    *auth.Authenticator
	usage   *usage.Recorder
	spend   *usage.SpendRecorder
	// engine is the meter's quota engine, started by quotaRunner: until
	// then the meter refuses what it would count (policy.Engine).
	engine *policy.Engine
	meter  *policy.Meter
	// restConfig is kept for the peer discovery quotaRunner starts.
	restConfig *rest.Config
	registry   *prometheus.Registry
	// metrics registers the gateway's own series on registry, each named
	// codevector_gateway_ + its name: the prefix is written here once.
	metrics prometheus.Registerer
	handler http.Handler
	health  *health
	probe   discovery.DiscoveryInterface
	console *console.Console
	docs    *docs.Docs
	// connsRefused counts connections over MaxConnsPerClient.
	connsRefused prometheus.Counter
}

// New builds a gateway against the API server of cfg: every part, each
// with its inputs. Nothing runs until Run.
func New(cfg *rest.Config, o Options) (*Gateway, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	g := &Gateway{opts: o, log: o.Logger, registry: prometheus.NewRegistry(), health: &health{}}
	g.metrics = prometheus.WrapRegistererWithPrefix(gatewayv1alpha1.MetricsNamespace+"_gateway_", g.registry)
	g.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	scheme := gatewayv1alpha1.NewScheme()
	cfg = rest.CopyConfig(cfg)
	if cfg.QPS == 0 {
		// client-go's default, 5 requests/s, would take 40 s just to open
		// the watches of 100 namespaces, and would hold last-use writes to
		// 300 keys a minute.
		cfg.QPS, cfg.Burst = DefaultQPS, DefaultBurst
	}
	g.restConfig = cfg
	if g.client, err = client.NewWithWatch(cfg, client.Options{Scheme: scheme}); err != nil {
		return nil, fmt.Errorf("creating API client: %w", err)
	}
	if g.probe, err = discovery.NewDiscoveryClientForConfig(cfg); err != nil {
		return nil, fmt.Errorf("creating API server probe: %w", err)
	}
	if err := g.buildKeys(cfg, scheme); err != nil {
		return nil, err
	}
	g.usage = usage.New(g.index, g.client, o.LastUsedInterval, o.Clock, g.log, g.metrics)
	g.spend = usage.NewSpendRecorder(g.index, g.client, o.LastUsedInterval, o.Clock, g.log, g.metrics)
	g.engine = policy.NewEngine()
	g.meter = policy.New(policy.Options{Engine: g.engine, Providers: o.Providers, Spend: g.spend, Clock: o.Clock, Log: g.log, Metrics: policy.NewMetrics(g.metrics),
		BudgetFailureMode: o.BudgetFailureMode, LimitsFailureMode: o.LimitsFailureMode})
	g.registerHealthMetrics()
	g.registerStaleMetrics()
	g.connsRefused = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "connections_refused_total",
		Help: "Connections closed on arrival because their client address already held --max-conns-per-client.",
	})
	g.metrics.MustRegister(g.connsRefused)
	if g.console, err = newConsole(cfg, g.index, g.client, o); err != nil {
		return nil, err
	}
	if g.docs, err = docs.New(g.log); err != nil {
		return nil, err
	}
	g.handler = g.routes(g.newProxy())
	return g, nil
}

// withDefaults fills in o's defaults and checks what it cannot default.
func (o Options) withDefaults() (Options, error) {
	if o.Providers == nil {
		return o, errors.New("no providers configured")
	}
	// Zero is the only value to replace: the durations with flags take
	// positive ones only (the others are set by tests), and a negative
	// MaxConnsPerClient means no cap.
	o.SystemNamespace = cmp.Or(o.SystemNamespace, gatewayv1alpha1.DefaultSystemNamespace)
	o.LastUsedInterval = cmp.Or(o.LastUsedInterval, 30*time.Second)
	o.ListWait = cmp.Or(o.ListWait, DefaultListWait)
	o.APIServerProbeInterval = cmp.Or(o.APIServerProbeInterval, 5*time.Second)
	o.StaleIndexAfter = cmp.Or(o.StaleIndexAfter, DefaultStaleIndexAfter)
	o.StaleIndex = cmp.Or(o.StaleIndex, StaleServe)
	o.Logger = cmp.Or(o.Logger, slog.Default())
	o.Timeouts = o.Timeouts.withDefaults()
	o.MaxConnsPerClient = cmp.Or(o.MaxConnsPerClient, DefaultMaxConnsPerClient)
	o.Console.Namespace = cmp.Or(o.Console.Namespace, o.SystemNamespace)
	o.Console.Logger = cmp.Or(o.Console.Logger, o.Logger)
	o.Clock = cmp.Or[clock.WithTickerAndDelayedExecution](o.Clock, clock.RealClock{})
	o.Auth.Clock = cmp.Or[clock.WithDelayedExecution](o.Auth.Clock, o.Clock)
	o.Console.Clock = cmp.Or[clock.PassiveClock](o.Console.Clock, o.Clock)
	if o.ReplicaName == "" {
		o.ReplicaName = replicas.ReplicaName()
	}
	if err := o.Peers.validate(); err != nil {
		return o, err
	}
	for _, ns := range o.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return o, fmt.Errorf("namespace %q to watch is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	if len(o.Namespaces) > 0 && !slices.Contains(o.Namespaces, o.Console.Namespace) {
		// Console-created keys must authenticate, and the console reads
		// them from the same cache.
		o.Namespaces = append(slices.Clone(o.Namespaces), o.Console.Namespace)
	}
	return o, nil
}

// buildKeys builds the key index, the watches that feed it, the Lease
// that publishes how far it has applied them, and the authenticator that
// reads it (and registers for its changes as it is built).
func (g *Gateway) buildKeys(cfg *rest.Config, scheme *runtime.Scheme) error {
	o := g.opts
	g.index = keyindex.New(nil)
	g.index.SetLogger(g.log)
	g.index.SetMetrics(keyindex.NewMetrics(g.metrics))
	g.replica = replicas.NewPublisher(g.client, o.SystemNamespace, o.ReplicaName, g.index, g.log.With("component", "replica-lease"))
	authOpts := o.Auth
	authOpts.Metrics = auth.NewMetrics(g.metrics)
	g.auth = auth.New(g.index, authOpts)
	watchClients, err := keyindex.NewClients(cfg, scheme)
	if err != nil {
		return err
	}
	g.watches = newWatches(func() *keyindex.Watch {
		return keyindex.NewWatch(watchClients, g.index, o.SystemNamespace, o.Namespaces, g.health.watchEvent)
	})
	return nil
}

// newConsole builds the console at /api-keys, reading keys from index.
func newConsole(cfg *rest.Config, index *keyindex.Index, c client.WithWatch, o Options) (*console.Console, error) {
	co := o.Console
	if co.Kubernetes == nil {
		// Sign-outs and create locks are shared with the other replicas
		// through the API server (console/signouts.go, createlock.go).
		var err error
		if co.Kubernetes, err = kubernetes.NewForConfig(cfg); err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		co.SystemNamespace = o.SystemNamespace
	}
	return console.New(index, c, co)
}

// newProxy builds the provider proxy, metered by the Meter, and logs the
// routes each provider enables.
func (g *Gateway) newProxy() *proxy.Proxy {
	providers := g.opts.Providers
	proxyOpts := g.opts.Proxy
	proxyOpts.Logger = g.log
	proxyOpts.Metrics = proxy.NewMetrics(g.metrics)
	proxyOpts.LogAttrs = requestLogAttrs
	proxyOpts.Meter = g.meter
	px := proxy.New(providers, proxyOpts)
	for _, name := range providers.Names() {
		p := providers.Get(name)
		routes := make([]string, len(p.Routes))
		for i, rt := range p.Routes {
			routes[i] = rt.String()
		}
		g.log.Info("Provider routes enabled", "provider", name, "kind", p.Kind, "baseURL", p.BaseURL.String(), "routes", routes)
	}
	return px
}

// Handler is the gateway's whole HTTP surface.
func (g *Gateway) Handler() http.Handler { return g.handler }

// Index is the gateway's key index (for tests and benchmarks).
func (g *Gateway) Index() *keyindex.Index { return g.index }

// PeerProofs is the table of verified-key proofs this replica shares with
// its peers (for tests and benchmarks).
func (g *Gateway) PeerProofs() *auth.PeerProofs { return g.auth.PeerProofs() }

// MetricsHandler serves the gateway's metrics at /metrics and nothing
// else: what Run serves on Options.MetricsListener.
func (g *Gateway) MetricsHandler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.registry, promhttp.HandlerOpts{Registry: g.registry}))
	return mux
}

// Registry holds the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.registry }
