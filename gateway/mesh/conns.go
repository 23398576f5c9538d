package mesh

import (
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
)

// reconnect bounds gRPC's reconnect backoff (by default 1 s growing 1.6x
// up to 120 s) so that a peer restarted after a kill is dialled again
// within a second of listening: until then it misses relayed revocations
// and pushed proofs, and falls back to its own watch and to argon2. A peer
// that stays down costs one TCP connect a second until discovery drops it.
var reconnect = grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
	MinConnectTimeout: 5 * time.Second,
}

// Conns keeps one client connection per peer address, authenticated
// with the peers' mutual TLS (Credential): the services on the peer
// listener (verified-key proofs, revocation relays) dial their peers
// through one of these rather than each keeping a pool of its own.
type Conns struct {
	cred  *Credential
	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// NewConns returns an empty pool that dials with cred.
func NewConns(cred *Credential) *Conns {
	return &Conns{cred: cred, conns: map[string]*grpc.ClientConn{}}
}

// Get returns the connection to addr, creating it (lazily: gRPC connects
// on first use) if there is none.
func (p *Conns) Get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	c, err := grpc.NewClient(addr,
		grpc.WithTransportCredentials(credentials.NewTLS(p.cred.ClientTLS())),
		grpc.WithConnectParams(reconnect))
	if err != nil {
		return nil, err
	}
	p.conns[addr] = c
	return c, nil
}

// Keep closes the connections to addresses not in keep: peers that left.
// Keep(nil) closes them all.
func (p *Conns) Keep(keep []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, c := range p.conns {
		if !slices.Contains(keep, addr) {
			c.Close()
			delete(p.conns, addr)
		}
	}
}
