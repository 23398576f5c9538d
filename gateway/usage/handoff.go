package usage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/codevector/codevector/gateway/usage/usagepb"
)

// Hand-off of last-use times at shutdown.
//
// A stopping replica's final flush would write the lastUsedAt of every key
// it used since its last flush: with thousands of keys in use, a burst of
// status patches (about 7 ms of API server CPU each, docs/benchmarks.md, "Rollout") in
// every step of a rollout, just when the API server is busy listing keys
// to the new replicas. Instead the stopping replica hands those times to a
// running peer over the peer listener's mutual TLS. The peer records them
// as uses of its own and writes them with its next regular flush, where
// they merge with its own uses of the same keys: one write, not two, and
// none during the rollout step. If no peer takes them, the stopping
// replica writes them itself, as a single replica always does.
//
// The service is generated from proto/codevector/gateway/v1/lastuse.proto
// (`make proto`): each key's time travels as a Timestamp.
const (
	// maxHandOffBatch keeps a message near 1 MiB (about 30 bytes per key),
	// under gRPC's 4 MiB limit.
	maxHandOffBatch = 32 * 1024
	// handOffTimeout bounds the whole hand-off, and handOffPeerTimeout
	// one peer's answer, so that peers that do not answer still leave the
	// final flush (5 s) half its time to write the times here.
	handOffTimeout     = 2500 * time.Millisecond
	handOffPeerTimeout = time.Second
)

// handOff sends last-use times (key ID to Unix seconds) to some peer and
// returns which one took them.
type handOff func(ctx context.Context, times map[string]int64) (peer string, err error)

// HandOffTo makes the final flush hand its times to one of peers() (the
// first that accepts them, starting at a random one), called with
// tlsConfig (the peers' mutual TLS).
func (r *Recorder) HandOffTo(peers func() []string, tlsConfig *tls.Config) {
	creds := credentials.NewTLS(tlsConfig)
	h := handOff(func(ctx context.Context, times map[string]int64) (string, error) {
		addrs := peers()
		if len(addrs) == 0 {
			return "", errors.New("no peers")
		}
		ctx, cancel := context.WithTimeout(ctx, handOffTimeout)
		defer cancel()
		batches := handOffBatches(times)
		first := rand.IntN(len(addrs))
		var errs []error
		for i := range addrs {
			addr := addrs[(first+i)%len(addrs)]
			err := sendHandOff(ctx, addr, creds, batches)
			if err == nil {
				return addr, nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
			if ctx.Err() != nil {
				break
			}
		}
		return "", errors.Join(errs...)
	})
	r.handOff.Store(&h)
}

func handOffBatches(times map[string]int64) []*usagepb.HandOffRequest {
	var out []*usagepb.HandOffRequest
	var cur *usagepb.HandOffRequest
	for id, sec := range times {
		if cur == nil || len(cur.Uses) == maxHandOffBatch {
			cur = &usagepb.HandOffRequest{Uses: make([]*usagepb.LastUse, 0, min(len(times), maxHandOffBatch))}
			out = append(out, cur)
		}
		cur.Uses = append(cur.Uses, &usagepb.LastUse{KeyId: id, At: &timestamppb.Timestamp{Seconds: sec}})
	}
	return out
}

func sendHandOff(ctx context.Context, addr string, creds credentials.TransportCredentials, batches []*usagepb.HandOffRequest) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, handOffPeerTimeout)
	defer cancel()
	client := usagepb.NewLastUsesClient(conn)
	for _, b := range batches {
		if _, err := client.HandOff(ctx, b); err != nil {
			return err
		}
	}
	return nil
}

// finalFlush is the flush of a stopping replica: it refuses its peers'
// hand-offs from now on (it could not write them), then hands its own
// times to a peer, or writes them if none takes them.
func (r *Recorder) finalFlush(ctx context.Context) {
	r.closingMu.Lock()
	r.closing = true
	r.closingMu.Unlock()
	h := r.handOff.Load()
	todo := r.unflushed()
	if h == nil || len(todo) == 0 {
		r.Flush(ctx)
		return
	}
	times := make(map[string]int64, len(todo))
	for _, p := range todo {
		times[p.id] = p.s.last.Load()
	}
	peer, err := (*h)(ctx, times)
	if err != nil {
		r.log.Warn("No peer took this replica's last-use times; writing them here", "keys", len(times), "error", err)
		r.Flush(ctx)
		return
	}
	for _, p := range todo {
		p.s.flushed = times[p.id]
	}
	r.handOffs.WithLabelValues("sent").Add(float64(len(times)))
	r.log.Info("Handed this replica's last-use times to a peer", "keys", len(times), "peer", peer)
}

// adopt records times a stopping peer handed over as uses of this
// replica, for its next flush. Keys this replica does not know are
// dropped, and no time is taken from the future.
func (r *Recorder) adopt(uses []*usagepb.LastUse) {
	now := r.clock.Now()
	n := 0
	for _, u := range uses {
		if u.GetAt().GetSeconds() <= 0 {
			continue
		}
		e := r.index.Lookup(u.GetKeyId())
		if e == nil {
			continue
		}
		// Whole seconds, as the Recorder keeps them.
		at := time.Unix(u.At.Seconds, 0)
		if at.After(now) {
			at = now
		}
		r.Record(e, at)
		n++
	}
	r.handOffs.WithLabelValues("received").Add(float64(n))
}

// RegisterHandOff serves the hand-off on the peer listener.
func (r *Recorder) RegisterHandOff(s grpc.ServiceRegistrar) {
	usagepb.RegisterLastUsesServer(s, handOffService{r: r})
}

type handOffService struct {
	usagepb.UnimplementedLastUsesServer
	r *Recorder
}

// HandOff adopts a stopping peer's times, unless this replica is stopping
// too.
func (h handOffService) HandOff(_ context.Context, in *usagepb.HandOffRequest) (*usagepb.HandOffResponse, error) {
	h.r.closingMu.RLock()
	defer h.r.closingMu.RUnlock()
	if h.r.closing {
		// Stopping too: the sender tries another peer, or writes the
		// times itself.
		return nil, status.Error(codes.Unavailable, "this replica is stopping")
	}
	h.r.adopt(in.GetUses())
	return &usagepb.HandOffResponse{}, nil
}
