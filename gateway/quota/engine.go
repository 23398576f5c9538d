package quota

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/mesh"
)

// counterName is gubernator's namespace for all our counters; the key and
// period are in the unique key.
const counterName = "codevector"

// singleReplicaAddress names the only peer of an Engine without a mesh.
// gubernator needs a peer list that contains the owner; this address is
// never dialled because the owner answers in-process.
const singleReplicaAddress = "in-process"

// Config configures an Engine.
type Config struct {
	// Mesh is the peer mesh this replica counts with (gateway/mesh): the
	// engine serves gubernator on its listener, with its mutual TLS, and
	// follows its peer list. Nil means a single replica: no listener, no
	// peers.
	Mesh *mesh.Mesh
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

	// batchWait, when positive, turns gubernator's batching of forwarded
	// hits back on; only BenchmarkTake uses it, to measure what it costs.
	batchWait time.Duration
}

// Engine counts per-key limits and budgets exactly across replicas. Each
// counter is owned by one replica (consistent hashing over the peer list);
// the others forward to it. It is safe for concurrent use.
type Engine struct {
	instance  *guber.V1Instance
	peered    bool // with a mesh; else the one replica owns every counter
	advertise string
	clock     clock.PassiveClock
	log       *slog.Logger
	behavior  guber.Behavior
	peersMu   sync.Mutex               // serializes SetPeers
	stopped   bool                     // guarded by peersMu; no SetPeers after Close
	peers     []guber.PeerInfo         // guarded by peersMu; the list last set
	replicas  atomic.Int32             // replicas in the peer list, this one included
	peerList  atomic.Pointer[peerList] // its ID, and a channel closed when it changes (peerlist.go)
	shadows   *shadowCounts            // nil for a single replica
	leases    *leaseTable              // nil for a single replica
	picker    *peerPicker              // gubernator's LocalPicker, which can redial a peer
	redials   redials                  // replacements of unreachable peers' clients (redial.go)
	sends     sendGenerations          // calls to gubernator in flight, for redial

	// Background renewals and give-backs of leases (see startSync); Close
	// stops them before gubernator.
	syncCtx     context.Context
	stopSyncs   context.CancelFunc
	syncMu      sync.Mutex // guards syncStopped and syncs.Add against Close
	syncStopped bool
	syncs       sync.WaitGroup

	closeOnce sync.Once
	closed    chan struct{}
}

// New starts an Engine. With Config.Mesh it registers gubernator's
// services on the mesh's server (before the mesh serves) and follows the
// mesh's peer list; cancel ctx or call Close to stop.
func New(ctx context.Context, cfg Config) (*Engine, error) {
	cfg.Clock = cmp.Or[clock.PassiveClock](cfg.Clock, clock.RealClock{})
	cfg.Log = cmp.Or(cfg.Log, slog.Default())
	e := &Engine{clock: cfg.Clock, log: cfg.Log, advertise: singleReplicaAddress, behavior: guber.Behavior_NO_BATCHING,
		picker:  newPeerPicker(),
		redials: redials{last: map[string]time.Time{}, inFlight: map[string]bool{}}}
	e.peerList.Store(&peerList{changed: make(chan struct{})})
	e.syncCtx, e.stopSyncs = context.WithCancel(context.Background())
	if cfg.batchWait > 0 {
		e.behavior = guber.Behavior_BATCHING
	}

	// gubernator registers its services on at least one gRPC server. A
	// single replica's server is never started: no port is opened.
	server := grpc.NewServer()
	if cfg.Mesh != nil {
		e.peered = true
		e.advertise = cfg.Mesh.Addr()
		server = cfg.Mesh.Server()
		e.shadows = newShadowCounts(maxShadows)
	}
	e.leases = newLeaseTable()

	conf := guber.Config{
		GRPCServers: []*grpc.Server{server},
		Behaviors: guber.BehaviorConfig{
			// Batching holds every forwarded hit for up to BatchWait
			// (500 µs by default) to share one RPC with others for the same
			// owner: ~1.5 ms p50 per forwarded Take against ~0.2 ms without
			// (BenchmarkTake). Not worth it at the gateway's request rates.
			DisableBatching: cfg.batchWait <= 0,
			BatchWait:       cfg.batchWait,
			BatchTimeout:    time.Second,
		},
		Store:         &hookStore{checkpoint: cfg.Checkpoint, shadows: e.shadows, log: cfg.Log},
		LocalPicker:   e.picker,
		AdvertiseAddr: e.advertise,
		Logger:        logrusToSlog(cfg.Log),
		CacheSize:     cfg.CacheSize,
	}
	if cfg.Mesh != nil {
		conf.PeerTLS = cfg.Mesh.Credential().ClientTLS()
	}
	instance, err := guber.NewV1Instance(conf)
	if err != nil {
		return nil, fmt.Errorf("starting gubernator: %w", err)
	}
	e.instance = instance
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(instance); err != nil && !errors.As(err, &prometheus.AlreadyRegisteredError{}) {
			instance.Close()
			return nil, fmt.Errorf("registering gubernator metrics: %w", err)
		}
	}
	if cfg.Mesh != nil {
		cfg.Mesh.OnPeers(e.SetPeers)
	} else {
		e.SetPeers(nil)
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
// owner from Checkpoint and what the peers last heard of them, so a peer
// list that flaps costs accuracy: feed it ready replicas only. A change
// drops this replica's leases: their owner may have changed, and their
// size depends on the number of replicas. After a budget's owner changed,
// this replica's next request of it first hands the new owner the count it
// last heard from the old one (shadowCounts.floors).
func (e *Engine) SetPeers(addrs []string) {
	if !e.peered {
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
		if e.peered {
			old := e.peerList.Swap(&peerList{id: peerListID(infos), changed: make(chan struct{})})
			close(old.changed)
		}
	}
	e.peers = infos
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

// Close drops all counters and stops following the peer list. It is safe
// to call more than once.
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
		// The listener is the mesh's: it stops with the mesh, and until
		// then gubernator's peer calls fail as to a replica that is down.
		err = e.instance.Close()
		close(e.closed)
	})
	return err
}
