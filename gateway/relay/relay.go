// Package relay passes revocations, and changes to what a key may do,
// between gateway replicas over the peer listener's mutual TLS (issue 24).
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
// Changes to what a key may do travel the same way: when a replica's own
// watch applies a rotation (the replaced secret's grace end, the new
// secret's key ID), a new expiry or a new policy (models, limits, budget),
// it sends the APIKey itself (keyindex.Index.OnAPIKeyChange), reduced to
// what the index reads, and a peer applies it as its own watch would
// (keyindex.Index.ApplyRelayed): only to the incarnation it holds, only
// forward in resource versions. Without it a replica cut off from the API
// server served a rotated-out secret past its grace period, and counted
// with an old limit, until its watch resumed (docs/reliability.md, "Chaos
// under load").
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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/relay/relaypb"
)

const (
	// queueSize bounds the revocations waiting to be sent, and apart from
	// them the changes (so that an admin's change of thousands of keys
	// never crowds out a revocation); past it they
	// are dropped (counted): the peers' own watches still bring them.
	queueSize = 4096
	// maxBatch is the most revocations in one message (about 200 bytes
	// each).
	maxBatch = 1024
	// maxChanges is the most changed APIKeys in one message, and
	// maxChangeBytes the largest one (in JSON; the CRD's bounds keep a key
	// with 32 models of 128 characters and two reveal public keys of 2,048
	// under 16 KiB): a message stays within gRPC's default 4 MiB.
	maxChanges     = 32
	maxChangeBytes = 64 << 10
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
	// Zero means 5s.
	HeartbeatInterval time.Duration
	// SendTimeout bounds one message to one peer, waiting for its
	// connection included. Zero means 2s.
	SendTimeout time.Duration
	Log         *slog.Logger
	Registerer  prometheus.Registerer
}

// Relay sends this replica's revocations and changes to its peers and
// applies theirs.
type Relay struct {
	cfg   Config
	queue chan item
	// changeQueue holds the changes, queue the revocations.
	changeQueue chan item
	sem         chan struct{}

	conns *mesh.Conns

	mu   sync.Mutex // guards sent
	sent map[dedupKey]struct{}

	relayed  *prometheus.CounterVec
	changes  *prometheus.CounterVec
	failures *prometheus.CounterVec
}

// item is one queued revocation, or when change is set one changed APIKey
// (in JSON, as sent).
type item struct {
	rev    keyindex.Revocation
	change []byte
}

// dedupKey names what was sent: a revocation by incarnation and reason, a
// change by incarnation and resource version.
type dedupKey struct {
	uid    types.UID
	reason keyindex.RevocationReason
	rv     string
}

// New builds a Relay and hooks it to cfg.Index: from now on every
// revocation its watches apply is queued for the peers. Nothing is sent
// until Run.
func New(cfg Config) *Relay {
	cfg.HeartbeatInterval = cmp.Or(cfg.HeartbeatInterval, 5*time.Second)
	cfg.SendTimeout = cmp.Or(cfg.SendTimeout, 2*time.Second)
	cfg.Log = cmp.Or(cfg.Log, slog.Default())
	if cfg.Current == nil {
		cfg.Current = func() bool { return true }
	}
	f := promauto.With(cfg.Registerer)
	r := &Relay{
		cfg:         cfg,
		queue:       make(chan item, queueSize),
		changeQueue: make(chan item, queueSize),
		sem:         make(chan struct{}, maxInFlight),
		conns:       mesh.NewConns(cfg.Credential),
		sent:        map[dedupKey]struct{}{},
		relayed:     f.NewCounterVec(prometheus.CounterOpts{Name: "revocations_relayed_total", Help: "Revocations and deletions of APIKeys relayed between replicas: sent (this replica's watch saw them; counted once, whatever the number of peers) and received (a peer's relay refused a key before this replica's watch did)."}, []string{"direction"}),
		changes:     f.NewCounterVec(prometheus.CounterOpts{Name: "apikey_changes_relayed_total", Help: "Rotations, expiry and policy changes of APIKeys relayed between replicas: sent (this replica's watch saw them; counted once, whatever the number of peers) and received (a peer's relay applied one before this replica's watch did)."}, []string{"direction"}),
		failures:    f.NewCounterVec(prometheus.CounterOpts{Name: "revocation_relay_errors_total", Help: "Relays to a peer that failed (send), were dropped because too many waited or a changed APIKey was too large (dropped), or messages from a peer that were malformed (receive)."}, []string{"op"}),
	}
	cfg.Index.OnRevocation(r.publish)
	cfg.Index.OnAPIKeyChange(r.publishChange)
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
	r.enqueue(r.queue, dedupKey{uid: rev.UID, reason: rev.Reason}, item{rev: rev}, r.relayed)
}

// publishChange queues a changed APIKey for the peers, once per resource
// version; it never blocks the index. An APIKey too large to send is
// dropped (counted): the peers' own watches still bring it.
func (r *Relay) publishChange(k *gatewayv1alpha1.APIKey) {
	b, err := json.Marshal(k)
	if err != nil || len(b) > maxChangeBytes {
		r.failures.WithLabelValues("dropped").Inc()
		return
	}
	r.enqueue(r.changeQueue, dedupKey{uid: k.UID, rv: k.ResourceVersion}, item{change: b}, r.changes)
}

func (r *Relay) enqueue(queue chan item, k dedupKey, it item, sent *prometheus.CounterVec) {
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
	case queue <- it:
		sent.WithLabelValues("sent").Inc()
	default:
		r.failures.WithLabelValues("dropped").Inc()
	}
}

// Run sends queued revocations and changes as they come, and heartbeats,
// to peers() until ctx ends, then closes its connections.
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
		case it := <-r.queue:
			r.fanOut(ctx, &wg, peers(), r.gather(it).encode(r.cfg.Current()), true)
		case it := <-r.changeQueue:
			r.fanOut(ctx, &wg, peers(), r.gather(it).encode(r.cfg.Current()), true)
		case <-t.C:
			if r.cfg.Current() {
				r.fanOut(ctx, &wg, peers(), Encode(Batch{}, true), false)
			}
		}
	}
}

// gather makes a batch of first and whatever else is queued, revocations
// first, up to the bounds of one message.
func (r *Relay) gather(first item) *wireBatch {
	var batch wireBatch
	batch.add(first)
	for _, q := range []chan item{r.queue, r.changeQueue} {
	drain:
		for !batch.full() {
			select {
			case it := <-q:
				batch.add(it)
			default:
				break drain
			}
		}
	}
	return &batch
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
					r.cfg.Log.Warn("Could not relay revocations or changes to a peer; its own watch will bring them", "peer", addr, "error", err)
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
	b, current, err := Decode(msg)
	if err != nil {
		r.failures.WithLabelValues("receive").Inc()
		return err
	}
	if current && r.cfg.HeardFromPeer != nil {
		r.cfg.HeardFromPeer()
	}
	for _, rev := range b.Revocations {
		if r.cfg.Index.Refuse(rev) {
			r.relayed.WithLabelValues("received").Inc()
			r.cfg.Log.Info("A peer relayed a revocation before this replica's watch", "apikey", rev.Name.String(), "reason", string(rev.Reason), "resourceVersion", rev.ResourceVersion)
		}
	}
	for _, k := range b.Changes {
		if r.cfg.Index.ApplyRelayed(k) {
			r.changes.WithLabelValues("received").Inc()
			r.cfg.Log.Info("A peer relayed a change of an APIKey before this replica's watch", "apikey", k.Namespace+"/"+k.Name, "resourceVersion", k.ResourceVersion)
		}
	}
	return nil
}

// Batch is what one message carries: revocations, and changed APIKeys
// (keyindex.RelayedAPIKey).
type Batch struct {
	Revocations []keyindex.Revocation
	Changes     []*gatewayv1alpha1.APIKey
}

// wireBatch is a Batch being gathered from the queue, its changes already
// in JSON.
type wireBatch struct {
	revs    []keyindex.Revocation
	changes [][]byte
}

func (b *wireBatch) add(it item) {
	if it.change != nil {
		b.changes = append(b.changes, it.change)
	} else {
		b.revs = append(b.revs, it.rev)
	}
}

// full: one more item could break a bound Decode holds a message to.
func (b *wireBatch) full() bool { return len(b.revs) >= maxBatch || len(b.changes) >= maxChanges }

func (b *wireBatch) encode(current bool) *relaypb.RelayRequest {
	msg := encodeRevocations(b.revs, current)
	for _, c := range b.changes {
		msg.Changes = append(msg.Changes, &relaypb.Change{ApiKey: c})
	}
	return msg
}

// Encode makes the message of a batch. A change that cannot be encoded
// within maxChangeBytes is left out (publishChange never queues one).
func Encode(b Batch, current bool) *relaypb.RelayRequest {
	var w wireBatch
	w.revs = b.Revocations
	for _, k := range b.Changes {
		if c, err := json.Marshal(k); err == nil && len(c) <= maxChangeBytes {
			w.changes = append(w.changes, c)
		}
	}
	return w.encode(current)
}

func encodeRevocations(revs []keyindex.Revocation, current bool) *relaypb.RelayRequest {
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
// any revocation or change it cannot read, or more of them than a sender
// puts in one.
func Decode(msg *relaypb.RelayRequest) (b Batch, current bool, err error) {
	revs, err := decodeRevocations(msg.GetRevocations())
	if err != nil {
		return Batch{}, false, err
	}
	changes, err := decodeChanges(msg.GetChanges())
	if err != nil {
		return Batch{}, false, err
	}
	return Batch{Revocations: revs, Changes: changes}, msg.GetCurrent(), nil
}

// decodeChanges reads changed APIKeys: each within maxChangeBytes, and
// naming one incarnation at one resource version.
func decodeChanges(items []*relaypb.Change) ([]*gatewayv1alpha1.APIKey, error) {
	if len(items) > maxChanges {
		return nil, fmt.Errorf("%w: %d changes, at most %d", errMalformed, len(items), maxChanges)
	}
	var out []*gatewayv1alpha1.APIKey
	for _, c := range items {
		if len(c.GetApiKey()) > maxChangeBytes {
			return nil, fmt.Errorf("%w: a change of %d bytes, at most %d", errMalformed, len(c.GetApiKey()), maxChangeBytes)
		}
		k := new(gatewayv1alpha1.APIKey)
		if err := json.Unmarshal(c.GetApiKey(), k); err != nil {
			return nil, fmt.Errorf("%w: a change: %w", errMalformed, err)
		}
		if k.Namespace == "" || k.Name == "" || k.UID == "" || k.ResourceVersion == "" {
			return nil, fmt.Errorf("%w: a change without a namespace, name, uid or resourceVersion", errMalformed)
		}
		out = append(out, k)
	}
	return out, nil
}

func decodeRevocations(items []*relaypb.Revocation) (revs []keyindex.Revocation, err error) {
	if len(items) > maxBatch {
		return nil, errMalformed
	}
	for _, v := range items {
		var reason keyindex.RevocationReason
		switch v.GetReason() {
		case relaypb.Reason_REASON_REVOKED:
			reason = keyindex.RevocationRevoked
		case relaypb.Reason_REASON_DELETED:
			reason = keyindex.RevocationDeleted
		default:
			return nil, errMalformed
		}
		if v.GetNamespace() == "" || v.GetName() == "" || v.GetUid() == "" {
			return nil, errMalformed
		}
		revs = append(revs, keyindex.Revocation{
			Name: types.NamespacedName{Namespace: v.GetNamespace(), Name: v.GetName()}, UID: types.UID(v.GetUid()),
			ResourceVersion: v.GetResourceVersion(), Reason: reason,
		})
	}
	return revs, nil
}
