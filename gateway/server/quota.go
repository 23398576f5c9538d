package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"k8s.io/client-go/rest"

	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/quota"
	"github.com/codevector/codevector/gateway/relay"
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

// startQuota starts the quota engine: at once for a single replica; with
// peers on the peer mesh (startMesh), once the peer credential is read
// (the manager creates it), then following the peer list. Until then the
// Meter refuses every request it would count (policy.Engine). With peers
// it also shares verified-key proofs over the same listener, and learns
// the peers' before it returns (and the replica reports ready).
func (g *Gateway) startQuota(ctx context.Context, cfg *rest.Config) error {
	o := g.opts.Peers
	qc := quota.Config{
		Clock:      g.opts.Clock,
		Checkpoint: policy.Checkpoint(g.index),
		Log:        g.log.With("component", "quota"),
		Registerer: g.registry,
	}
	if o.Listener != nil {
		o.Listen = o.Listener.Addr().String()
	}
	var peers *peerServices
	if o.Listen != "" {
		var err error
		if peers, err = g.startMesh(ctx, o); err != nil {
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
		if err := g.followPeers(ctx, cfg, peers); err != nil {
			engine.Close()
			peers.mesh.Close()
			return err
		}
	}
	g.engine.Start(engine)
	g.log.Info("Quota engine started", "peerAddress", engine.Addr(), "discovery", o.Discovery, "staticPeers", o.Static)
	return nil
}

// newRelay relays revocations to and from the peers (gateway/relay), and
// counts a current peer's messages as hearing of changes (stale.go).
func (g *Gateway) newRelay(cred *mesh.Credential) *relay.Relay {
	bound := g.opts.StaleIndexAfter
	return relay.New(relay.Config{
		Index:             g.index,
		Credential:        cred,
		Current:           func() bool { return g.health.currentWithAPIServer(bound) },
		HeardFromPeer:     g.health.heardFromPeer,
		HeartbeatInterval: min(bound/3, 5*time.Second),
		Log:               g.log.With("component", "relay"),
		Registerer:        g.metrics,
	})
}
