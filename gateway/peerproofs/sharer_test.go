package peerproofs

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/peerproofs/peerproofspb"
)

// replica is a Sharer serving its proof table on a peer listener of its
// own with cred's mutual TLS, as a gateway replica does.
type replica struct {
	sharer *Sharer
	proofs *auth.PeerProofs
	addr   string
}

func newReplica(t testing.TB, cred *mesh.Credential, clk *testingclock.FakeClock) *replica {
	t.Helper()
	a := auth.New(keyindex.New(nil), auth.Options{Clock: clk})
	s := New(Config{Proofs: a.PeerProofs(), Credential: cred, Clock: clk, PushInterval: 10 * time.Millisecond, FetchTimeout: time.Second})
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cred.ServerTLS())))
	s.Register(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return &replica{sharer: s, proofs: a.PeerProofs(), addr: ln.Addr().String()}
}

func proofsAt(now time.Time, ids ...string) []auth.PeerProof {
	out := make([]auth.PeerProof, len(ids))
	for i, id := range ids {
		out[i] = auth.PeerProof{KeyID: id, Binding: auth.Binding{byte(i)}, Epoch: now.Unix() / int64(auth.ProofEpoch/time.Second)}
	}
	return out
}

func credential(t testing.TB) *mesh.Credential {
	t.Helper()
	c, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A new replica learns every proof its peers hold, in batches, and a proof
// made later reaches the peers within a push interval.
func TestFetchAndPush(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	cred := credential(t)
	old, fresh := newReplica(t, cred, clk), newReplica(t, cred, clk)
	ids := make([]string, maxBatch+5) // more than one batch
	for i := range ids {
		ids[i] = "key" + string(rune('A'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
	}
	if n := old.proofs.Import(proofsAt(clk.Now(), ids...), clk.Now()); n != len(ids) {
		t.Fatalf("seeded %d proofs", n)
	}
	if n := fresh.sharer.Fetch(t.Context(), []string{old.addr}); n != len(ids) || fresh.proofs.Len() != len(ids) {
		t.Fatalf("fetched %d proofs (holding %d), want %d", n, fresh.proofs.Len(), len(ids))
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	go fresh.sharer.Run(ctx, func() []string { return []string{old.addr} })
	fresh.sharer.publish(proofsAt(clk.Now(), "madeByFresh")[0])
	deadline := time.Now().Add(5 * time.Second)
	for !old.proofs.Has("madeByFresh") {
		if time.Now().After(deadline) {
			t.Fatal("a new proof did not reach the peer within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The proof service answers only callers holding the replicas' shared
// credential: another CA's certificate, or none, gets no proof and can
// plant none.
func TestPeerChannelRefusesOutsiders(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	cred := credential(t)
	r := newReplica(t, cred, clk)
	r.proofs.Import(proofsAt(clk.Now(), "secretKeyID"), clk.Now())

	foreign := credential(t)
	noCert := cred.ClientTLS()
	noCert.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	foreignClient := foreign.ClientTLS()
	foreignClient.RootCAs = cred.ServerTLS().ClientCAs // trusts the server, but holds another CA's certificate
	for name, tlsConf := range map[string]*tls.Config{"another CA": foreignClient, "no certificate": noCert} {
		t.Run(name, func(t *testing.T) {
			conn, err := grpc.NewClient(r.addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			defer cancel()
			got := 0
			if _, err := list(ctx, conn, func(b *peerproofspb.ProofBatch) (int, error) { got += len(b.Proofs); return 0, nil }); err == nil || got > 0 {
				t.Errorf("List answered an outsider: %d proofs, error %v", got, err)
			}
			if err := push(ctx, conn, encode(proofsAt(clk.Now(), "planted"))); err == nil || r.proofs.Has("planted") {
				t.Errorf("Push accepted from an outsider (error %v)", err)
			}
		})
	}
}

// A replica whose peers do not answer is not held up for longer than the
// fetch timeout, and learns nothing.
func TestFetchFromUnreachablePeers(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	r := newReplica(t, credential(t), clk)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	silent := ln.Addr().String() // accepts connections, never speaks TLS
	defer ln.Close()
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	refused := closed.Addr().String()
	closed.Close()

	start := time.Now()
	if n := r.sharer.Fetch(t.Context(), []string{silent, refused}); n != 0 {
		t.Errorf("learned %d proofs from peers that do not answer", n)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("Fetch took %v with a fetch timeout of 1s", took)
	}
}

// A peer of a release before the generated Proofs service (or one with
// --no-peer-proofs) answers Unimplemented: the new replica learns nothing
// from it, at once rather than after the fetch timeout, and verifies those
// keys itself; its pushes fail and cost nothing else (docs/design.md,
// section 14.5).
func TestPeerWithoutTheServiceIsSkipped(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	cred := credential(t)
	r := newReplica(t, cred, clk)
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cred.ServerTLS())))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	other := ln.Addr().String()

	start := time.Now()
	if n := r.sharer.Fetch(t.Context(), []string{other}); n != 0 {
		t.Errorf("learned %d proofs from a peer without the service", n)
	}
	if took := time.Since(start); took >= r.sharer.cfg.FetchTimeout {
		t.Errorf("Fetch waited %v, its whole timeout, for a peer that answered Unimplemented", took)
	}
	conn, err := r.sharer.conns.Get(other)
	if err != nil {
		t.Fatal(err)
	}
	if err := push(t.Context(), conn, encode(proofsAt(clk.Now(), "k"))); status.Code(err) != codes.Unimplemented {
		t.Errorf("Push to a peer without the service: %v, want Unimplemented", err)
	}
}
