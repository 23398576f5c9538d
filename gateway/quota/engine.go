package quota

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"k8s.io/utils/clock"
)

// counterName is gubernator's namespace for all our counters; the key and
// period are in the unique key.
const counterName = "codevector"

// singleReplicaAddress names the only peer of an Engine without a listener.
// gubernator needs a peer list that contains the owner; this address is
// never dialled because the owner answers in-process.
const singleReplicaAddress = "in-process"

// Config configures an Engine.
type Config struct {
	// PeerListen is the host:port this replica serves its peers on. Empty
	// means a single replica: no listener, no peers.
	PeerListen string
	// PeerListener, if set, is used instead of listening on PeerListen
	// (tests: a port held open from the start cannot be taken by another
	// process in between).
	PeerListener net.Listener
	// Advertise is the host:port peers reach this replica at, as it appears
	// in their peer lists. Defaults to the listener's address when that
	// names a host (not 0.0.0.0 or [::]).
	Advertise string
	// Peers is a static peer list (host:port). This replica is added if
	// absent. Kubernetes discovery calls SetPeers instead.
	Peers []string
	// Credential authenticates peers to each other. Required with
	// PeerListen: counters must not be writable by anything that can reach
	// the port.
	Credential *Credential
	// Checkpoint restores counters that gubernator does not hold (after a
	// restart, an eviction or a change of owner). Optional.
	Checkpoint Checkpoint
	// Clock decides windows and periods. Defaults to the real clock. It
	// must not run behind the wall clock: gubernator drops items whose end
	// has passed by its own (wall) clock, which cannot be injected.
	Clock clock.PassiveClock
	// Log receives gubernator's log. Defaults to slog.Default().
	Log *slog.Logger
	// Registerer, if set, gets gubernator's metrics (gubernator_*).
	Registerer prometheus.Registerer
	// CacheSize is how many counters a replica holds (gubernator's LRU,
	// default 50,000). Evicted counters come back through Checkpoint.
	CacheSize int

	// Services register more services on the peer listener
	// (verified-key proofs, last-use hand-offs): they get the same mutual
	// TLS as the counters.
	Services []func(grpc.ServiceRegistrar)

	// batchWait, when positive, turns gubernator's batching of forwarded
	// hits back on; only BenchmarkTake uses it, to measure what it costs.
	batchWait time.Duration
}

// Engine counts per-key limits and budgets exactly across replicas. Each
// counter is owned by one replica (consistent hashing over the peer list);
// the others forward to it. It is safe for concurrent use.
type Engine struct {
	instance  *guber.V1Instance
	server    *grpc.Server
	listener  net.Listener
	advertise string
	clock     clock.PassiveClock
	log       *slog.Logger
	behavior  guber.Behavior
	peersMu   sync.Mutex       // serializes SetPeers
	stopped   bool             // guarded by peersMu; no SetPeers after Close
	peers     []guber.PeerInfo // guarded by peersMu; the list last set
	replicas  atomic.Int32     // replicas in the peer list, this one included
	shadows   *shadowCounts    // nil for a single replica
	leases    *leaseTable      // nil for a single replica

	// Background renewals and give-backs of leases (see startSync); Close
	// stops them before gubernator.
	syncCtx     context.Context
	stopSyncs   context.CancelFunc
	syncMu      sync.Mutex // guards syncStopped and syncs.Add against Close
	syncStopped bool
	syncs       sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}
	serveDone chan struct{}
}

// New starts an Engine. With Config.PeerListen set it listens for peers at
// once; cancel ctx or call Close to stop.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.PeerListener != nil {
		cfg.PeerListen = cfg.PeerListener.Addr().String()
	}
	if cfg.PeerListen == "" && len(cfg.Peers) > 0 {
		return nil, errors.New("peers given without a peer listen address")
	}
	if cfg.PeerListen != "" && cfg.Credential == nil {
		return nil, errors.New("a peer listener needs a peer credential")
	}
	e := &Engine{clock: cfg.Clock, log: cfg.Log, advertise: singleReplicaAddress, behavior: guber.Behavior_NO_BATCHING}
	e.syncCtx, e.stopSyncs = context.WithCancel(context.Background())
	if cfg.batchWait > 0 {
		e.behavior = guber.Behavior_BATCHING
	}

	if cfg.PeerListen != "" {
		lis := cfg.PeerListener
		if lis == nil {
			var err error
			if lis, err = net.Listen("tcp", cfg.PeerListen); err != nil {
				return nil, fmt.Errorf("listening for peers on %s: %w", cfg.PeerListen, err)
			}
		}
		e.listener = lis
		e.advertise = cfg.Advertise
		if e.advertise == "" {
			host, _, _ := net.SplitHostPort(lis.Addr().String())
			if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
				lis.Close()
				return nil, fmt.Errorf("peer listener %s has no host to advertise; set the advertise address", lis.Addr())
			}
			e.advertise = lis.Addr().String()
		}
		e.server = grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg.Credential.ServerTLS())))
		e.shadows = newShadowCounts(maxShadows)
	} else {
		// gubernator registers its services on at least one gRPC server. A
		// single replica's server is never started: no port is opened.
		e.server = grpc.NewServer()
	}
	e.leases = newLeaseTable()

	for _, register := range cfg.Services {
		register(e.server)
	}

	conf := guber.Config{
		GRPCServers: []*grpc.Server{e.server},
		Behaviors: guber.BehaviorConfig{
			// Batching holds every forwarded hit for up to BatchWait
			// (500 µs by default) to share one RPC with others for the same
			// owner: ~1.5 ms p50 per forwarded Take against ~0.2 ms without
			// (BenchmarkTake). Not worth it at the gateway's request rates.
			DisableBatching: cfg.batchWait <= 0,
			BatchWait:       cfg.batchWait,
			BatchTimeout:    time.Second,
		},
		Store:         &hookStore{checkpoint: cfg.Checkpoint, shadows: e.shadows},
		AdvertiseAddr: e.advertise,
		Logger:        logrusToSlog(cfg.Log),
		CacheSize:     cfg.CacheSize,
	}
	if cfg.Credential != nil {
		conf.PeerTLS = cfg.Credential.ClientTLS()
	}
	instance, err := guber.NewV1Instance(conf)
	if err != nil {
		if e.listener != nil {
			e.listener.Close()
		}
		return nil, fmt.Errorf("starting gubernator: %w", err)
	}
	e.instance = instance
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(instance); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			instance.Close()
			if e.listener != nil {
				e.listener.Close()
			}
			return nil, fmt.Errorf("registering gubernator metrics: %w", err)
		}
	}
	e.SetPeers(cfg.Peers)

	e.serveDone = make(chan struct{})
	if e.listener != nil {
		go func() {
			defer close(e.serveDone)
			if err := e.server.Serve(e.listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				e.log.Error("Peer listener stopped", "address", e.listener.Addr().String(), "error", err)
			}
		}()
	} else {
		close(e.serveDone)
	}
	e.closed = make(chan struct{})
	if ctx.Done() != nil {
		go func() {
			select {
			case <-ctx.Done():
				e.Close()
			case <-e.closed:
			}
		}()
	}
	return e, nil
}

// Addr is the address peers reach this replica at (its entry in their peer
// lists).
func (e *Engine) Addr() string { return e.advertise }

// SetPeers replaces the peer list (host:port of every replica; this one is
// added if missing). Counters whose owner changes start over on their new
// owner from Checkpoint, so a peer list that flaps costs accuracy: feed it
// ready replicas only. A change drops this replica's leases: their owner
// may have changed, and their size depends on the number of replicas.
func (e *Engine) SetPeers(addrs []string) {
	if e.listener == nil {
		addrs = nil
	}
	// gubernator's SetPeers reads its pickers outside its own lock, so two
	// calls at once (discovery and Close) race; serialize them here.
	e.peersMu.Lock()
	defer e.peersMu.Unlock()
	if e.stopped {
		return
	}
	infos := peerInfos(addrs, e.advertise)
	e.instance.SetPeers(infos)
	e.replicas.Store(int32(len(infos)))
	if !slices.Equal(infos, e.peers) {
		e.leases.reset()
	}
	e.peers = infos
}

// Peers returns the addresses of the other replicas, from gubernator's own
// peer list.
func (e *Engine) Peers() []string {
	var out []string
	for _, p := range e.instance.GetPeerList() {
		if info := p.Info(); !info.IsOwner {
			out = append(out, info.GRPCAddress)
		}
	}
	return out
}

// peerInfos maps a peer address list to gubernator's PeerInfo: sorted,
// without blanks and duplicates, always containing self, which is marked as
// the owner (gubernator answers for the owner in-process).
func peerInfos(addrs []string, self string) []guber.PeerInfo {
	all := []string{self}
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			all = append(all, a)
		}
	}
	slices.Sort(all)
	all = slices.Compact(all)
	infos := make([]guber.PeerInfo, len(all))
	for i, a := range all {
		infos[i] = guber.PeerInfo{GRPCAddress: a, IsOwner: a == self}
	}
	return infos
}

// Close stops serving peers and drops all counters. It is safe to call
// more than once.
func (e *Engine) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.syncMu.Lock()
		e.syncStopped = true
		e.syncMu.Unlock()
		e.stopSyncs()
		e.syncs.Wait()
		// An empty peer list shuts down the connections to peers.
		e.peersMu.Lock()
		e.stopped = true
		e.instance.SetPeers(nil)
		e.peersMu.Unlock()
		err = e.instance.Close()
		e.server.Stop()
		<-e.serveDone
		close(e.closed)
	})
	return err
}
