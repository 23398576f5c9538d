// Package peerproofs shares verified-key proofs between gateway replicas,
// so that a key verified with argon2id on one replica costs one HMAC on
// the others (issue 15): a new replica of a rollout fetches its peers'
// proofs before it reports ready, and every replica passes on the proofs
// it makes while it serves.
//
// A proof (auth.PeerProof) is an HMAC of the full key, its key ID, APIKey
// UID, hash Secret UID, hash and rotation state, under a key derived per
// 6-hour epoch from the replicas' peer credential (mesh.Credential). It
// is useless without the key's secret: the replica that learns it still
// needs the client to present the key, and checks the proof against the
// hash it knows itself, so a stale proof (the key revoked, rotated or
// rehashed) or a foreign one never lets a request through. Proofs travel
// only over the peer listener's mutual TLS and live only in memory.
package peerproofs

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"google.golang.org/grpc"
	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/peerproofs/peerproofspb"
)

// Config configures a Sharer.
type Config struct {
	Proofs     *auth.PeerProofs
	Credential *mesh.Credential
	// FetchTimeout bounds Fetch: a replica whose peers do not answer
	// becomes ready after it anyway and verifies keys itself. Zero means 3s.
	FetchTimeout time.Duration
	// PushInterval is how long new proofs gather before they are passed
	// on, in one message per peer. Zero means 100ms.
	PushInterval time.Duration
	Clock        clock.PassiveClock
	Log          *slog.Logger
	Registerer   prometheus.Registerer
}

// Sharer exchanges proofs with the peers.
type Sharer struct {
	cfg     Config
	metrics metrics

	conns *mesh.Conns

	mu      sync.Mutex // guards pending
	pending []auth.PeerProof
}

// maxPending bounds the proofs waiting to be pushed; past it, new ones
// are not pushed (peers that need them verify the key themselves).
const maxPending = 4 * maxBatch

// New enables cfg.Proofs under the credential's proof secret.
func New(cfg Config) *Sharer {
	cfg.FetchTimeout = cmp.Or(cfg.FetchTimeout, 3*time.Second)
	cfg.PushInterval = cmp.Or(cfg.PushInterval, 100*time.Millisecond)
	cfg.Clock = cmp.Or[clock.PassiveClock](cfg.Clock, clock.RealClock{})
	cfg.Log = cmp.Or(cfg.Log, slog.Default())
	s := &Sharer{cfg: cfg, conns: mesh.NewConns(cfg.Credential)}
	s.metrics = newMetrics(cfg.Registerer, cfg.Proofs)
	cfg.Proofs.Enable(cfg.Credential.DeriveSecret("verified-key proofs"), s.publish)
	return s
}

// Register serves the proof service on the peer listener.
func (s *Sharer) Register(r grpc.ServiceRegistrar) {
	peerproofspb.RegisterProofsServer(r, service{s: s})
}

// publish queues a proof this replica made for its peers.
func (s *Sharer) publish(p auth.PeerProof) {
	s.mu.Lock()
	if len(s.pending) < maxPending {
		s.pending = append(s.pending, p)
	}
	s.mu.Unlock()
}

func (s *Sharer) listBatches() []*peerproofspb.ProofBatch {
	all := s.cfg.Proofs.Export(s.cfg.Clock.Now())
	var out []*peerproofspb.ProofBatch
	for batch := range slices.Chunk(all, maxBatch) {
		out = append(out, encode(batch))
	}
	return out
}

func (s *Sharer) learn(batch *peerproofspb.ProofBatch) (int, error) {
	proofs, err := decode(batch)
	if err != nil {
		return 0, err
	}
	n := s.cfg.Proofs.Import(proofs, s.cfg.Clock.Now())
	s.metrics.learned.Add(float64(n))
	return n, nil
}

// Fetch learns the proofs of every peer in peers, each asked at once,
// within the fetch timeout. It returns how many proofs it learned; a peer
// that fails or does not answer in time is logged and skipped.
func (s *Sharer) Fetch(ctx context.Context, peers []string) int {
	if len(peers) == 0 {
		return 0
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, s.cfg.FetchTimeout)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	learned, answered := 0, 0
	for _, addr := range peers {
		wg.Go(func() {
			n, err := s.fetchFrom(ctx, addr)
			mu.Lock()
			defer mu.Unlock()
			learned += n
			if err != nil {
				s.metrics.errors.WithLabelValues("fetch").Inc()
				s.cfg.Log.Warn("Could not fetch verified-key proofs from a peer; its keys will be verified here", "peer", addr, "error", err)
				return
			}
			answered++
		})
	}
	wg.Wait()
	s.cfg.Log.Info("Fetched verified-key proofs from peers", "proofs", learned, "peers", len(peers), "answered", answered, "took", time.Since(start).Round(time.Millisecond))
	return learned
}

func (s *Sharer) fetchFrom(ctx context.Context, addr string) (int, error) {
	conn, err := s.conns.Get(addr)
	if err != nil {
		return 0, err
	}
	return list(ctx, conn, s.learn)
}

// Run passes on new proofs to peers() every push interval until ctx
// ends, then closes its connections.
func (s *Sharer) Run(ctx context.Context, peers func() []string) {
	t := time.NewTicker(s.cfg.PushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s.conns.Keep(nil)
			return
		case <-t.C:
			s.pushPending(ctx, peers())
		}
	}
}

func (s *Sharer) pushPending(ctx context.Context, peers []string) {
	s.conns.Keep(peers)
	s.mu.Lock()
	pending := s.pending
	s.pending = nil
	s.mu.Unlock()
	if len(pending) == 0 || len(peers) == 0 {
		return
	}
	var batches []*peerproofspb.ProofBatch
	for batch := range slices.Chunk(pending, maxBatch) {
		batches = append(batches, encode(batch))
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, addr := range peers {
		wg.Go(func() {
			conn, err := s.conns.Get(addr)
			for _, b := range batches {
				if err == nil {
					err = push(ctx, conn, b)
				}
			}
			if err != nil {
				// The peer verifies those keys itself; nothing is lost.
				s.metrics.errors.WithLabelValues("push").Inc()
				s.cfg.Log.Debug("Could not push verified-key proofs to a peer", "peer", addr, "error", err)
			}
		})
	}
	wg.Wait()
	s.metrics.pushed.Add(float64(len(pending)))
}

type metrics struct {
	learned prometheus.Counter
	pushed  prometheus.Counter
	errors  *prometheus.CounterVec
}

// newMetrics creates the sharer's metrics on reg (nil: not registered),
// with a gauge of the proofs held.
func newMetrics(reg prometheus.Registerer, proofs *auth.PeerProofs) metrics {
	f := promauto.With(reg)
	f.NewGaugeFunc(prometheus.GaugeOpts{Name: "peer_proofs", Help: "Verified-key proofs held in memory, made here or learned from peers."},
		func() float64 { return float64(proofs.Len()) })
	return metrics{
		learned: f.NewCounter(prometheus.CounterOpts{Name: "peer_proofs_learned_total", Help: "Verified-key proofs learned from peer replicas."}),
		pushed:  f.NewCounter(prometheus.CounterOpts{Name: "peer_proofs_pushed_total", Help: "Verified-key proofs this replica made and passed on to its peers."}),
		errors:  f.NewCounterVec(prometheus.CounterOpts{Name: "peer_proof_errors_total", Help: "Failed proof exchanges with a peer, by operation (fetch, push); the keys concerned are verified with argon2id instead."}, []string{"op"}),
	}
}
