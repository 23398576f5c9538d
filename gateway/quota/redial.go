package quota

import (
	"context"
	"sync"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
)

// redialInterval is how often, at most, the engine replaces its client of
// a peer it fails to reach.
//
// gubernator dials each peer once (NewPeerClient, which takes no dial
// options) and keeps that client for as long as the address stays in the
// peer list. While the peer is down, gRPC's reconnect backoff (1 s,
// growing 1.6 times per failed attempt, up to 2 minutes) spaces out the
// client's attempts, and between them every call fails at once: a replica
// killed for 10 s stayed unreachable for its peers up to 5 s after it was
// ready again, and keys whose counters it owned were served uncounted
// (--limits-failure-mode open) or refused (closed) meanwhile
// (docs/reliability.md, "Counter owner killed and restarted").
// A fresh client dials on its first call, so with a failing peer's client
// replaced at most every redialInterval, the peers reach a restarted
// replica within redialInterval of its listener opening, which comes
// before it reports ready. A peer that stays down costs one connection
// attempt per interval, only while requests need it.
const redialInterval = 100 * time.Millisecond

// hashReplicas is the number of points each peer has on the consistent
// hash: gubernator's default (defaultReplicas), so that replicas agree on
// the owners with gubernator's own picker.
const hashReplicas = 512

// peerPicker is gubernator's consistent hash (its default LocalPicker)
// that can forget one peer's client. gubernator's SetPeers reuses the
// client its current picker holds for each address, and shuts down the
// old clients its new picker does not hold. So while *replacing is a
// client, SetPeers with an unchanged peer list dials that client's peer
// anew and leaves the old client open for redial to shut down, and no
// counter changes owner.
type peerPicker struct {
	*guber.ReplicatedConsistentHash
	// replacing is shared by every picker New returns; Engine.peersMu
	// guards it (gubernator reads it only inside SetPeers).
	replacing **guber.PeerClient
}

func newPeerPicker() *peerPicker {
	return &peerPicker{ReplicatedConsistentHash: guber.NewReplicatedConsistentHash(nil, hashReplicas), replacing: new(*guber.PeerClient)}
}

// New implements guber.PeerPicker.
func (p *peerPicker) New() guber.PeerPicker {
	return &peerPicker{ReplicatedConsistentHash: p.ReplicatedConsistentHash.New().(*guber.ReplicatedConsistentHash), replacing: p.replacing}
}

// GetByPeerInfo implements guber.PeerPicker: nil for the client being
// replaced.
func (p *peerPicker) GetByPeerInfo(info guber.PeerInfo) *guber.PeerClient {
	c := p.ReplicatedConsistentHash.GetByPeerInfo(info)
	if c != nil && c == *p.replacing {
		return nil
	}
	return c
}

// sendGenerations counts the calls to gubernator in flight (Engine.send),
// by generation. A replaced client is shut down only once every call of
// the generation that could have picked it has returned: gubernator's
// PeerClient.Shutdown resets the client's error cache without a lock
// while a call that is returning records its error there.
type sendGenerations struct {
	mu  sync.Mutex
	cur *sync.WaitGroup
}

// enter counts a call in the current generation; call Done on the result
// when it returns.
func (g *sendGenerations) enter() *sync.WaitGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cur == nil {
		g.cur = new(sync.WaitGroup)
	}
	g.cur.Add(1)
	return g.cur
}

// next starts a new generation and returns the previous one, to wait on.
func (g *sendGenerations) next() *sync.WaitGroup {
	g.mu.Lock()
	defer g.mu.Unlock()
	prev := g.cur
	g.cur = new(sync.WaitGroup)
	if prev == nil {
		prev = new(sync.WaitGroup)
	}
	return prev
}

// redials spaces out the replacements of each peer's client.
type redials struct {
	mu       sync.Mutex
	last     map[string]time.Time // when each peer's last replacement started
	inFlight map[string]bool
}

// redialUnreachable replaces, in the background, the client of each peer
// that a forwarded request of reqs could not reach (its answer carries an
// error and no owner: gubernator sets the owner only on answers that came
// back from it). Errors of the owner itself and the caller's own deadline
// or cancellation say nothing about the connection and redial nothing.
func (e *Engine) redialUnreachable(ctx context.Context, reqs []*guber.RateLimitReq, resps []*guber.RateLimitResp) {
	if !e.peered || ctx.Err() != nil {
		return
	}
	for i, r := range resps {
		if r == nil || r.Error == "" || r.Metadata["owner"] != "" {
			continue
		}
		peer, err := e.instance.GetPeer(ctx, reqs[i].Name+"_"+reqs[i].UniqueKey)
		if err != nil || peer.Info().IsOwner {
			continue
		}
		e.redial(peer.Info().GRPCAddress)
	}
}

// redial replaces the client of the peer at addr in the background,
// unless that was started less than redialInterval ago or is under way.
// The interval is measured on the real clock: it spaces out connection
// attempts, which Config.Clock (for counting windows) has nothing to do
// with.
func (e *Engine) redial(addr string) {
	r := &e.redials
	r.mu.Lock()
	if r.inFlight[addr] || time.Since(r.last[addr]) < redialInterval {
		r.mu.Unlock()
		return
	}
	r.inFlight[addr] = true
	r.last[addr] = time.Now()
	r.mu.Unlock()
	done := func() {
		r.mu.Lock()
		delete(r.inFlight, addr)
		r.mu.Unlock()
	}

	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	if e.syncStopped {
		done()
		return
	}
	e.syncs.Add(1)
	go func() {
		defer e.syncs.Done()
		defer done()
		old, calls := e.replaceClient(addr)
		if old == nil {
			return
		}
		calls.Wait()
		// No call holds the old client any more: Shutdown closes its
		// connection at once.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := old.Shutdown(ctx); err != nil {
			e.log.Warn("Failed to close a replaced connection to a peer", "peer", addr, "error", err)
		}
	}()
}

// replaceClient has gubernator dial the peer at addr anew, with the peer
// list unchanged. It returns the old client, still open, and the calls
// that may still use it; nil if the engine is closed or addr is no longer
// a peer.
func (e *Engine) replaceClient(addr string) (*guber.PeerClient, *sync.WaitGroup) {
	e.peersMu.Lock()
	defer e.peersMu.Unlock()
	if e.stopped {
		return nil, nil
	}
	var old *guber.PeerClient
	for _, c := range e.instance.GetPeerList() {
		if c.Info().GRPCAddress == addr && !c.Info().IsOwner {
			old = c
		}
	}
	if old == nil {
		return nil, nil
	}
	e.log.Debug("Redialing a peer the quota engine failed to reach", "peer", addr)
	*e.picker.replacing = old
	e.instance.SetPeers(e.peers)
	*e.picker.replacing = nil
	// Calls from now on pick the new client.
	return old, e.sends.next()
}
