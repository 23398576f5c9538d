package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/codevector/codevector/gateway/peerproofs"
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
// peers once the peer credential is read (the manager creates it), then
// following the peer list. Until then the Meter refuses every request it
// would count (policy.Engine). With peers it also shares verified-key proofs over the same
// listener, and learns the peers' before it returns (and the replica
// reports ready).
func (g *Gateway) startQuota(ctx context.Context, cfg *rest.Config) error {
	o := g.opts.Peers
	qc := quota.Config{
		PeerListen:   o.Listen,
		PeerListener: o.Listener,
		Clock:        g.opts.Clock,
		Advertise:    o.Advertise,
		Peers:        o.Static,
		Checkpoint:   policy.Checkpoint(g.index),
		Log:          g.log.With("component", "quota"),
		Registerer:   g.registry,
	}
	if o.Listener != nil {
		o.Listen = o.Listener.Addr().String()
	}
	var sharer *peerproofs.Sharer
	var relays *relay.Relay
	var cred *quota.Credential
	if o.Listen != "" {
		var err error
		cred, err = quota.ReadCredential(ctx, g.client, g.opts.SystemNamespace, g.log)
		if err != nil {
			return err
		}
		qc.Credential = cred
		qc.Services = append(qc.Services, g.usage.RegisterHandOff)
		relays = g.newRelay(cred)
		qc.Services = append(qc.Services, relays.Register)
		if !o.DisableProofSharing {
			sharer = peerproofs.New(peerproofs.Config{
				Proofs:     g.auth.PeerProofs(),
				Credential: cred,
				Clock:      g.opts.Clock,
				Log:        g.log.With("component", "peerproofs"),
				Registerer: g.registry,
			})
			qc.Services = append(qc.Services, sharer.Register)
		}
		if qc.Advertise == "" && o.Discovery == DiscoveryKubernetes {
			_, port, err := net.SplitHostPort(o.Listen)
			if err != nil {
				return fmt.Errorf("--peer-listen %q: %w", o.Listen, err)
			}
			if g.opts.PodIP == "" {
				return errors.New("--peer-discovery kubernetes needs the pod's IP (the POD_IP environment variable, from the downward API) or --peer-advertise")
			}
			qc.Advertise = net.JoinHostPort(g.opts.PodIP, port)
		}
	}
	engine, err := quota.New(ctx, qc)
	if err != nil {
		return err
	}
	if o.Discovery == DiscoveryKubernetes {
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			engine.Close()
			return err
		}
		_, port, _ := net.SplitHostPort(o.Listen)
		if err := quota.WatchPeers(ctx, cs, g.opts.SystemNamespace, o.Selector, port, engine, g.log); err != nil {
			engine.Close()
			return err
		}
	}
	if sharer != nil {
		// Before ready: a new replica of a rollout starts with what its
		// peers verified instead of running argon2id for every key.
		sharer.Fetch(ctx, engine.Peers())
		go sharer.Run(ctx, engine.Peers)
	}
	if relays != nil {
		go relays.Run(ctx, engine.Peers)
	}
	if cred != nil {
		// A stopping replica hands its last-use times to a peer rather
		// than writing them during a rollout (gateway/usage/handoff.go).
		g.usage.HandOffTo(engine.Peers, cred.ClientTLS())
	}
	g.engine.Start(engine)
	g.log.Info("Quota engine started", "peerAddress", engine.Addr(), "discovery", o.Discovery, "staticPeers", o.Static)
	return nil
}

// newRelay relays revocations to and from the peers (gateway/relay), and
// counts a current peer's messages as hearing of changes (stale.go).
func (g *Gateway) newRelay(cred *quota.Credential) *relay.Relay {
	bound := g.opts.StaleIndexAfter
	return relay.New(relay.Config{
		Index:             g.index,
		Credential:        cred,
		Current:           func() bool { return g.health.currentWithAPIServer(bound) },
		HeardFromPeer:     g.health.heardFromPeer,
		HeartbeatInterval: min(bound/3, 5*time.Second),
		Log:               g.log.With("component", "relay"),
		Registerer:        g.registry,
	})
}
