package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/quota"
	"github.com/codevector/codevector/gateway/relay"
	"github.com/codevector/codevector/gateway/usage"
)

// PeerOptions say how this replica finds the others it shares per-key
// counters with (docs/design.md, section 14). The zero value is one replica.
type PeerOptions struct {
	// Listen is the address this replica serves its peers on; empty means
	// a single replica (no listener, the dev default).
	Listen string
	// Listener, if set, replaces Listen (tests).
	Listener net.Listener
	// Advertise is the address the peers reach this replica at; default
	// Listen when it names a host, else the pod IP (POD_IP) with Listen's
	// port.
	Advertise string
	// Static is a fixed peer list (tests on one host).
	Static []string
	// Discovery is "kubernetes" to find the peers as the ready pods in the
	// system namespace matching Selector, on Listen's port.
	Discovery string
	Selector  string
	// DisableProofSharing turns off the sharing of verified-key proofs
	// with the peers (package peerproofs): then every replica, a new one
	// after a rollout too, runs argon2id once for each key it serves.
	DisableProofSharing bool
}

// DiscoveryKubernetes is PeerOptions.Discovery's one value.
const DiscoveryKubernetes = "kubernetes"

func (o PeerOptions) validate() error {
	switch {
	case o.Listen == "" && o.Listener == nil && (len(o.Static) > 0 || o.Discovery != ""):
		return errors.New("peers are set but no peer listen address: add --peer-listen")
	case o.Discovery != "" && o.Discovery != DiscoveryKubernetes:
		return fmt.Errorf("peer discovery %q: the one method is kubernetes", o.Discovery)
	case o.Discovery == DiscoveryKubernetes && o.Selector == "":
		return errors.New("--peer-discovery kubernetes needs --peer-selector (the gateway pods' labels)")
	case o.Discovery == DiscoveryKubernetes && len(o.Static) > 0:
		return errors.New("--peers and --peer-discovery are exclusive")
	}
	return nil
}

// quotaRunner starts the quota engine once the keys' first sync is in
// (budget counters are restored from the indexed usage), closing started
// then, and stops it when it stops: at once for a single replica; with
// peers on the peer mesh (startMesh), once the peer credential is read
// (the manager creates it), then following the peer list. Until then the
// Meter refuses every request it would count (policy.Engine). With peers
// it also shares verified-key proofs over the same listener, and learns
// the peers' before it closes started (and the replica reports ready).
type quotaRunner struct {
	keysSynced <-chan struct{}
	started    chan<- struct{}
	// engine is the Meter's: started with the quota engine built here.
	engine *policy.Engine

	peers           PeerOptions
	systemNamespace string
	podIP           string
	client          client.Client
	restConfig      *rest.Config // for peer discovery
	clock           clock.PassiveClock
	index           *keyindex.Index
	// registry gets gubernator's metrics under their own names, metrics
	// the gateway's (codevector_gateway_).
	registry *prometheus.Registry
	metrics  prometheus.Registerer
	// lastUsed hands its times to a peer when it stops, proofs are
	// shared with the peers, and the relay's heartbeats count as hearing
	// of changes (health, staleIndexAfter).
	lastUsed        *usage.Recorder
	proofs          *auth.PeerProofs
	health          *health
	staleIndexAfter time.Duration
	log             *slog.Logger
}

func (g *Gateway) newQuotaRunner(keysSynced <-chan struct{}, started chan<- struct{}) *quotaRunner {
	return &quotaRunner{
		keysSynced: keysSynced, started: started, engine: g.engine,
		peers: g.opts.Peers, systemNamespace: g.opts.SystemNamespace, podIP: g.opts.PodIP,
		client: g.client, restConfig: g.restConfig, clock: g.opts.Clock, index: g.index,
		registry: g.registry, metrics: g.metrics,
		lastUsed: g.usage, proofs: g.auth.PeerProofs(), health: g.health, staleIndexAfter: g.opts.StaleIndexAfter,
		log: g.log,
	}
}

func (*quotaRunner) Name() string { return "quota engine" }

func (q *quotaRunner) Start(ctx context.Context) error {
	select {
	case <-q.keysSynced:
	case <-ctx.Done():
		return nil
	}
	if err := q.startEngine(ctx); err != nil {
		if ctx.Err() != nil {
			// Stopped while it started (waiting for the peer credential):
			// not a failure.
			return nil
		}
		return fmt.Errorf("starting: %w", err)
	}
	close(q.started)
	<-ctx.Done()
	return nil
}

// startEngine builds the quota engine (on the peer mesh, with peers) and
// starts the Meter's with it; both close when ctx ends.
func (q *quotaRunner) startEngine(ctx context.Context) error {
	o := q.peers
	qc := quota.Config{
		Clock:      q.clock,
		Checkpoint: policy.Checkpoint(q.index),
		Log:        q.log.With("component", "quota"),
		Registerer: q.registry,
	}
	if o.Listener != nil {
		o.Listen = o.Listener.Addr().String()
	}
	var peers *peerServices
	if o.Listen != "" {
		var err error
		if peers, err = q.startMesh(ctx, o); err != nil {
			return err
		}
		qc.Mesh = peers.mesh
	}
	engine, err := quota.New(ctx, qc)
	if err != nil {
		if peers != nil {
			peers.mesh.Close()
		}
		return err
	}
	if peers != nil {
		// Every service is registered (gubernator's by quota.New): serve.
		peers.mesh.Serve()
		if err := q.followPeers(ctx, peers); err != nil {
			engine.Close()
			peers.mesh.Close()
			return err
		}
	}
	q.engine.Start(engine)
	q.log.Info("Quota engine started", "peerAddress", engine.Addr(), "discovery", o.Discovery, "staticPeers", o.Static)
	return nil
}

// newRelay relays revocations to and from the peers (gateway/relay), and
// counts a current peer's messages as hearing of changes (stale.go).
func (q *quotaRunner) newRelay(cred *mesh.Credential) *relay.Relay {
	bound := q.staleIndexAfter
	return relay.New(relay.Config{
		Index:             q.index,
		Credential:        cred,
		Current:           func() bool { return q.health.currentWithAPIServer(bound) },
		HeardFromPeer:     q.health.heardFromPeer,
		HeartbeatInterval: min(bound/3, 5*time.Second),
		Log:               q.log.With("component", "relay"),
		Registerer:        q.metrics,
	})
}
