package server

import (
	"context"
	"errors"
	"fmt"
	"net"

	"k8s.io/client-go/kubernetes"

	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/peerproofs"
	"github.com/codevector/codevector/gateway/relay"
)

// peerServices are this replica's peer mesh (docs/design.md, section 14)
// and the services on it besides the quota engine's counters.
type peerServices struct {
	mesh   *mesh.Mesh
	relays *relay.Relay
	sharer *peerproofs.Sharer // nil with DisableProofSharing
	opts   PeerOptions
}

// startMesh reads the peer credential, listens for peers and registers the
// last-use hand-off, the revocation relay and the proof sharing on the
// listener; the caller registers the counters, then serves. The mesh
// closes when ctx ends.
func (q *quotaRunner) startMesh(ctx context.Context, o PeerOptions) (*peerServices, error) {
	cred, err := mesh.ReadCredential(ctx, q.client, q.systemNamespace, q.log)
	if err != nil {
		return nil, err
	}
	advertise := o.Advertise
	if advertise == "" && o.Discovery == DiscoveryKubernetes {
		_, port, err := net.SplitHostPort(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("--peer-listen %q: %w", o.Listen, err)
		}
		if q.podIP == "" {
			return nil, errors.New("--peer-discovery kubernetes needs the pod's IP (the POD_IP environment variable, from the downward API) or --peer-advertise")
		}
		advertise = net.JoinHostPort(q.podIP, port)
	}
	m, err := mesh.New(mesh.Config{
		Listen:     o.Listen,
		Listener:   o.Listener,
		Advertise:  advertise,
		Credential: cred,
		Peers:      o.Static,
		Log:        q.log.With("component", "mesh"),
	})
	if err != nil {
		return nil, err
	}
	context.AfterFunc(ctx, m.Close)
	p := &peerServices{mesh: m, relays: q.newRelay(cred), opts: o}
	q.lastUsed.RegisterHandOff(m.Server())
	p.relays.Register(m.Server())
	if !o.DisableProofSharing {
		p.sharer = peerproofs.New(peerproofs.Config{
			Proofs:     q.proofs,
			Credential: cred,
			Clock:      q.clock,
			Log:        q.log.With("component", "peerproofs"),
			Registerer: q.metrics,
		})
		p.sharer.Register(m.Server())
	}
	return p, nil
}

// followPeers keeps p's peer list (the ready gateway pods, with kubernetes
// discovery) and starts the services that call the peers.
func (q *quotaRunner) followPeers(ctx context.Context, p *peerServices) error {
	if p.opts.Discovery == DiscoveryKubernetes {
		cs, err := kubernetes.NewForConfig(q.restConfig)
		if err != nil {
			return err
		}
		_, port, _ := net.SplitHostPort(p.opts.Listen)
		if err := mesh.WatchPeers(ctx, cs, q.systemNamespace, p.opts.Selector, port, p.mesh, q.log); err != nil {
			return err
		}
	}
	if p.sharer != nil {
		// Before ready: a new replica of a rollout starts with what its
		// peers verified instead of running argon2id for every key.
		p.sharer.Fetch(ctx, p.mesh.Peers())
		go p.sharer.Run(ctx, p.mesh.Peers)
	}
	go p.relays.Run(ctx, p.mesh.Peers)
	// A stopping replica hands its last-use times to a peer rather than
	// writing them during a rollout (gateway/usage/handoff.go).
	q.lastUsed.HandOffTo(p.mesh.Peers, p.mesh.Credential().ClientTLS())
	return nil
}
