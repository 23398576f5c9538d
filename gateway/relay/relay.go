// Package relay passes revocations between gateway replicas over the peer
// listener's mutual TLS (issue 24).
//
// Every replica learns of a revocation from its own API server watch,
// within milliseconds. But a watch whose connection has gone silent, not
// closed (a NAT or a proxy that dropped it, a stalled API server), tells
// its replica nothing, and client-go notices only when the connection's
// health check fails, tens of seconds later: meanwhile that replica would
// accept a revoked key. So a replica that applies a revocation or a
// deletion from its own watch sends it to every peer at once
// (keyindex.Index.OnRevocation), and a peer marks the key refused
// (keyindex.Index.Refuse), keyed by the APIKey's UID and held at the
// resource version the sender saw. A receiver never relays what it heard:
// the watch of every replica that still hears the API server relays it
// anyway.
//
// Replicas also send each other a heartbeat while they hear from the API
// server themselves: a replica that hears neither the API server nor such
// a peer for longer than the stale bound is stale (gateway/server's
// /readyz, --stale-index).
//
// The service is generated (package relaypb, from
// proto/codevector/gateway/v1/revocations.proto, with `make proto`: buf
// and the protoc-gen-go plugins built from source), like the other peer
// services, and served on the peer mesh's listener (gateway/mesh).
package relay

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/relay/relaypb"
)

const (
	// queueSize bounds the revocations waiting to be sent; past it they
	// are dropped (counted): the peers' own watches still bring them.
	queueSize = 4096
	// maxBatch is the most revocations in one message (about 200 bytes
	// each).
	maxBatch = 1024
	// maxInFlight bounds the messages being sent at once, to all peers
	// together.
	maxInFlight = 64
	// dedupSize is how many revocations are remembered as sent.
	dedupSize = 8192
)

// Config configures a Relay.
type Config struct {
	Index      *keyindex.Index
	Credential *mesh.Credential
	// Current reports whether this replica hears from the API server
	// (within the stale bound): only then do its heartbeats count.
	Current func() bool
	// HeardFromPeer is called whenever a peer that is current itself sends
	// anything.
	HeardFromPeer func()
	// HeartbeatInterval is how often a current replica tells its peers so.
	// Default 5s.
	HeartbeatInterval time.Duration
	// SendTimeout bounds one message to one peer, waiting for its
	// connection included. Default 2s.
	SendTimeout time.Duration
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// Relay sends this replica's revocations to its peers and applies theirs.
type Relay struct {
	cfg   Config
	queue chan keyindex.Revocation
	sem   chan struct{}

	conns *mesh.Conns

	mu   sync.Mutex // guards sent
	sent map[dedupKey]struct{}

	relayed  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

type dedupKey struct {
	uid    types.UID
	reason keyindex.RevocationReason
}

// New builds a Relay and hooks it to cfg.Index: from now on every
// revocation its watches apply is queued for the peers. Nothing is sent
// until Run.
func New(cfg Config) *Relay {
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 5 * time.Second
	}
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 2 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Current == nil {
		cfg.Current = func() bool { return true }
	}
	f := promauto.With(cfg.Registerer)
	r := &Relay{
		cfg:      cfg,
		queue:    make(chan keyindex.Revocation, queueSize),
		sem:      make(chan struct{}, maxInFlight),
		conns:    mesh.NewConns(cfg.Credential),
		sent:     map[dedupKey]struct{}{},
		relayed:  f.NewCounterVec(prometheus.CounterOpts{Name: "revocations_relayed_total", Help: "Revocations and deletions of APIKeys relayed between replicas: sent (this replica's watch saw them; counted once, whatever the number of peers) and received (a peer's relay refused a key before this replica's watch did)."}, []string{"direction"}),
		failures: f.NewCounterVec(prometheus.CounterOpts{Name: "revocation_relay_errors_total", Help: "Relays to a peer that failed (send), were dropped because too many waited (dropped), or messages from a peer that were malformed (receive)."}, []string{"op"}),
	}
	cfg.Index.OnRevocation(r.publish)
	return r
}

// Register serves the relay on the peer listener, behind its mutual TLS:
// only holders of the peers' credential can call it.
func (r *Relay) Register(s grpc.ServiceRegistrar) {
	relaypb.RegisterRevocationsServer(s, service{r: r})
}

// service is the generated server interface over a Relay.
type service struct {
	relaypb.UnimplementedRevocationsServer
	r *Relay
}

func (s service) Relay(_ context.Context, in *relaypb.RelayRequest) (*relaypb.RelayResponse, error) {
	if err := s.r.receive(in); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &relaypb.RelayResponse{}, nil
}

// publish queues a revocation for the peers, once per APIKey incarnation
// and reason; it never blocks the index.
func (r *Relay) publish(rev keyindex.Revocation) {
	k := dedupKey{rev.UID, rev.Reason}
	r.mu.Lock()
	if _, dup := r.sent[k]; dup {
		r.mu.Unlock()
		return
	}
	if len(r.sent) >= dedupSize {
		clear(r.sent)
	}
	r.sent[k] = struct{}{}
	r.mu.Unlock()
	select {
	case r.queue <- rev:
		r.relayed.WithLabelValues("sent").Inc()
	default:
		r.failures.WithLabelValues("dropped").Inc()
	}
}

// Run sends queued revocations as they come, and heartbeats, to peers()
// until ctx ends, then closes its connections.
func (r *Relay) Run(ctx context.Context, peers func() []string) {
	t := time.NewTicker(r.cfg.HeartbeatInterval)
	defer t.Stop()
	defer r.conns.Keep(nil)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case rev := <-r.queue:
			batch := []keyindex.Revocation{rev}
		drain:
			for len(batch) < maxBatch {
				select {
				case rev := <-r.queue:
					batch = append(batch, rev)
				default:
					break drain
				}
			}
			r.fanOut(ctx, &wg, peers(), Encode(batch, r.cfg.Current()), true)
		case <-t.C:
			if r.cfg.Current() {
				r.fanOut(ctx, &wg, peers(), Encode(nil, true), false)
			}
		}
	}
}

// fanOut sends msg to every peer at once, each in a goroutine of its own
// under the bound of maxInFlight. A heartbeat (must false) is skipped for
// a peer when the bound is reached rather than wait.
func (r *Relay) fanOut(ctx context.Context, wg *sync.WaitGroup, peers []string, msg *relaypb.RelayRequest, must bool) {
	r.conns.Keep(peers)
	for _, addr := range peers {
		if must {
			select {
			case r.sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		} else {
			select {
			case r.sem <- struct{}{}:
			default:
				continue
			}
		}
		wg.Go(func() {
			defer func() { <-r.sem }()
			if err := r.send(ctx, addr, msg); err != nil && ctx.Err() == nil {
				if must {
					r.failures.WithLabelValues("send").Inc()
					r.cfg.Log.Warn("Could not relay revocations to a peer; its own watch will bring them", "peer", addr, "error", err)
				} else {
					r.cfg.Log.Debug("Could not send a heartbeat to a peer", "peer", addr, "error", err)
				}
			}
		})
	}
}

func (r *Relay) send(ctx context.Context, addr string, msg *relaypb.RelayRequest) error {
	conn, err := r.conns.Get(addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.SendTimeout)
	defer cancel()
	// WaitForReady: a connection that is coming back (a peer's restart) is
	// waited for within the timeout rather than failed at once.
	_, err = relaypb.NewRevocationsClient(conn).Relay(ctx, msg, grpc.WaitForReady(true))
	return err
}

// receive applies a peer's message.
func (r *Relay) receive(msg *relaypb.RelayRequest) error {
	revs, current, err := Decode(msg)
	if err != nil {
		r.failures.WithLabelValues("receive").Inc()
		return err
	}
	if current && r.cfg.HeardFromPeer != nil {
		r.cfg.HeardFromPeer()
	}
	for _, rev := range revs {
		if r.cfg.Index.Refuse(rev) {
			r.relayed.WithLabelValues("received").Inc()
			r.cfg.Log.Info("A peer relayed a revocation before this replica's watch", "apikey", rev.Name.String(), "reason", string(rev.Reason), "resourceVersion", rev.ResourceVersion)
		}
	}
	return nil
}

// Encode makes the message of a batch of revocations.
func Encode(revs []keyindex.Revocation, current bool) *relaypb.RelayRequest {
	msg := &relaypb.RelayRequest{Current: current, Revocations: make([]*relaypb.Revocation, 0, len(revs))}
	for _, rev := range revs {
		reason := relaypb.Reason_REASON_REVOKED
		if rev.Reason == keyindex.RevocationDeleted {
			reason = relaypb.Reason_REASON_DELETED
		}
		msg.Revocations = append(msg.Revocations, &relaypb.Revocation{
			Namespace: rev.Name.Namespace, Name: rev.Name.Name, Uid: string(rev.UID),
			ResourceVersion: rev.ResourceVersion, Reason: reason,
		})
	}
	return msg
}

var errMalformed = errors.New("malformed revocation relay")

// Decode reads a message Encode made. It rejects, whole, a message with
// any revocation it cannot read.
func Decode(msg *relaypb.RelayRequest) (revs []keyindex.Revocation, current bool, err error) {
	items := msg.GetRevocations()
	if len(items) > maxBatch {
		return nil, false, errMalformed
	}
	for _, v := range items {
		var reason keyindex.RevocationReason
		switch v.GetReason() {
		case relaypb.Reason_REASON_REVOKED:
			reason = keyindex.RevocationRevoked
		case relaypb.Reason_REASON_DELETED:
			reason = keyindex.RevocationDeleted
		default:
			return nil, false, errMalformed
		}
		if v.GetNamespace() == "" || v.GetName() == "" || v.GetUid() == "" {
			return nil, false, errMalformed
		}
		revs = append(revs, keyindex.Revocation{
			Name: types.NamespacedName{Namespace: v.GetNamespace(), Name: v.GetName()}, UID: types.UID(v.GetUid()),
			ResourceVersion: v.GetResourceVersion(), Reason: reason,
		})
	}
	return revs, msg.GetCurrent(), nil
}
