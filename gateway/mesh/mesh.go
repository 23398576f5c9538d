// Package mesh is the gateway replicas' peer mesh (docs/design.md,
// section 14): one gRPC listener behind mutual TLS, the credential that
// authenticates it (Credential, a CA the manager keeps in a Secret), the
// peer list (static or the ready gateway pods, WatchPeers) and one client
// connection per peer (Conns). It knows none of the services it carries:
// the quota engine's counters (gubernator), the revocation relay, the
// verified-key proofs and the last-use hand-off each register themselves
// on Server before Serve, and follow the peer list through Peers or
// OnPeers.
package mesh

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Config configures a Mesh.
type Config struct {
	// Listen is the host:port this replica serves its peers on.
	Listen string
	// Listener, if set, is used instead of listening on Listen (tests: a
	// port held open from the start cannot be taken by another process in
	// between).
	Listener net.Listener
	// Advertise is the host:port peers reach this replica at, as it
	// appears in their peer lists. Defaults to the listener's address when
	// that names a host (not 0.0.0.0 or [::]).
	Advertise string
	// Credential authenticates peers to each other. Required: nothing that
	// merely reaches the port may write counters or plant proofs.
	Credential *Credential
	// Peers is a static peer list (host:port); this replica is added if
	// absent. Kubernetes discovery (WatchPeers) calls SetPeers instead.
	Peers []string
	// Log receives the listener's failures. Defaults to slog.Default().
	Log *slog.Logger
}

// Mesh is this replica's place among its peers. Build it with New,
// register the services on Server, then Serve.
type Mesh struct {
	cred      *Credential
	listener  net.Listener
	server    *grpc.Server
	advertise string
	log       *slog.Logger

	mu      sync.Mutex // guards the fields below and orders OnPeers calls
	all     []string   // the peer list, sorted, this replica included
	onPeers []func(all []string)
	closed  bool

	serveOnce sync.Once
	serveDone chan struct{}
	closeOnce sync.Once
}

// New listens for peers. Nothing is served until Serve.
func New(cfg Config) (*Mesh, error) {
	if cfg.Credential == nil {
		return nil, errors.New("a peer listener needs a peer credential")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	lis := cfg.Listener
	if lis == nil {
		var err error
		if lis, err = net.Listen("tcp", cfg.Listen); err != nil {
			return nil, fmt.Errorf("listening for peers on %s: %w", cfg.Listen, err)
		}
	}
	advertise := cfg.Advertise
	if advertise == "" {
		host, _, _ := net.SplitHostPort(lis.Addr().String())
		if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
			lis.Close()
			return nil, fmt.Errorf("peer listener %s has no host to advertise; set the advertise address", lis.Addr())
		}
		advertise = lis.Addr().String()
	}
	m := &Mesh{
		cred:      cfg.Credential,
		listener:  lis,
		server:    grpc.NewServer(grpc.Creds(credentials.NewTLS(cfg.Credential.ServerTLS()))),
		advertise: advertise,
		log:       cfg.Log,
		serveDone: make(chan struct{}),
	}
	m.all = normalize(cfg.Peers, advertise)
	return m, nil
}

// Server is the peer listener's gRPC server, for the services to register
// on before Serve. It is a *grpc.Server rather than a ServiceRegistrar
// because gubernator asks for one.
func (m *Mesh) Server() *grpc.Server { return m.server }

// Credential is the peers' shared credential.
func (m *Mesh) Credential() *Credential { return m.cred }

// Addr is the address peers reach this replica at (its entry in their peer
// lists).
func (m *Mesh) Addr() string { return m.advertise }

// Serve starts answering peers, in the background, until Close.
func (m *Mesh) Serve() {
	m.serveOnce.Do(func() {
		go func() {
			defer close(m.serveDone)
			if err := m.server.Serve(m.listener); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				m.log.Error("Peer listener stopped", "address", m.listener.Addr().String(), "error", err)
			}
		}()
	})
}

// OnPeers calls f with the peer list (this replica included, sorted) now
// and after each change, never two calls at once.
func (m *Mesh) OnPeers(f func(all []string)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.onPeers = append(m.onPeers, f)
	f(slices.Clone(m.all))
}

// SetPeers replaces the peer list (host:port of every replica; this one is
// added if missing) and passes it to the OnPeers functions. After Close
// it does nothing.
func (m *Mesh) SetPeers(addrs []string) {
	all := normalize(addrs, m.advertise)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	m.all = all
	for _, f := range m.onPeers {
		f(slices.Clone(all))
	}
}

// Peers returns the addresses of the other replicas.
func (m *Mesh) Peers() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(m.all), func(a string) bool { return a == m.advertise })
}

// Close stops serving peers at once (calls in flight fail: their callers
// treat this replica as down). The services' own connections to peers are
// theirs to close. It is safe to call more than once.
func (m *Mesh) Close() {
	m.closeOnce.Do(func() {
		m.mu.Lock()
		m.closed = true
		m.mu.Unlock()
		m.server.Stop()
		m.serveOnce.Do(func() { close(m.serveDone) }) // never served
		m.listener.Close()
		<-m.serveDone
	})
}

// normalize returns addrs sorted, without blanks and duplicates, with self.
func normalize(addrs []string, self string) []string {
	all := []string{self}
	for _, a := range addrs {
		if a = strings.TrimSpace(a); a != "" {
			all = append(all, a)
		}
	}
	slices.Sort(all)
	return slices.Compact(all)
}
