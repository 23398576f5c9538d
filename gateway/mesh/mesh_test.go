package mesh

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newMesh(t *testing.T, cred *Credential, peers ...string) *Mesh {
	t.Helper()
	m, err := New(Config{Listen: "127.0.0.1:0", Credential: cred, Peers: peers, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	return m
}

// The services follow one peer list: each OnPeers function gets it at
// once and after each change, normalized and with this replica, and
// Peers is the others.
func TestPeerListReachesEveryService(t *testing.T) {
	cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	m := newMesh(t, cred, " 10.0.0.9:7946", "10.0.0.2:7946", "", "10.0.0.2:7946")
	var mu sync.Mutex
	var seen [][]string
	m.OnPeers(func(all []string) { mu.Lock(); seen = append(seen, all); mu.Unlock() })
	m.SetPeers([]string{"10.0.0.3:7946", m.Addr()})

	want := [][]string{
		slices.Sorted(slices.Values([]string{m.Addr(), "10.0.0.2:7946", "10.0.0.9:7946"})),
		slices.Sorted(slices.Values([]string{m.Addr(), "10.0.0.3:7946"})),
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.EqualFunc(seen, want, slices.Equal) {
		t.Errorf("OnPeers saw %q, want %q", seen, want)
	}
	if got := m.Peers(); !slices.Equal(got, []string{"10.0.0.3:7946"}) {
		t.Errorf("Peers() = %q, want the other replica only", got)
	}
	m.Close()
	m.SetPeers(nil)
	if len(seen) != 2 {
		t.Errorf("a peer list set after Close reached the services: %q", seen[len(seen)-1])
	}
}

// A service registered on the mesh answers peers holding the credential,
// through Conns, and nobody else.
func TestServesRegisteredServicesToPeersOnly(t *testing.T) {
	cred, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	m := newMesh(t, cred)
	healthpb.RegisterHealthServer(m.Server(), health.NewServer())
	m.Serve()

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conns := NewConns(cred)
	defer conns.Keep(nil)
	conn, err := conns.Get(m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true)); err != nil {
		t.Fatalf("a peer's call failed: %v", err)
	}

	other, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	foreign := other.ClientTLS()
	foreign.RootCAs = cred.ServerTLS().ClientCAs // trusts the server, holds another CA's certificate
	outsider, err := grpc.NewClient(m.Addr(), grpc.WithTransportCredentials(credentials.NewTLS(foreign)))
	if err != nil {
		t.Fatal(err)
	}
	defer outsider.Close()
	if _, err := healthpb.NewHealthClient(outsider).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("the mesh answered a caller holding another CA's certificate")
	}

	m.Close()
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err == nil {
		t.Error("a closed mesh still answered")
	}
}
