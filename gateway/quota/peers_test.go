package quota

import (
	"context"
	"testing"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/gateway/mesh"
)

// A replica holding another CA is refused both ways: its peers do not accept
// it as a client, and it does not accept them as servers.
func TestPeerWithAnotherCredentialIsRefused(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	ours, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	a := newPeered(t, Config{Clock: clk}, ours)
	b := newPeered(t, Config{Clock: clk}, theirs)
	a.SetPeers([]string{a.Addr(), b.Addr()})
	b.SetPeers([]string{a.Addr(), b.Addr()})

	var refusedAtoB, refusedBtoA bool
	for _, key := range []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"} {
		c := Counter{Key: key, Limit: 10, Window: time.Minute}
		if _, err := a.Take(context.Background(), c, 1); err != nil {
			refusedAtoB = true
		}
		if _, err := b.Take(context.Background(), c, 1); err != nil {
			refusedBtoA = true
		}
	}
	if !refusedAtoB || !refusedBtoA {
		t.Fatalf("counters owned by a peer with another CA were served (a->b refused %v, b->a refused %v)", refusedAtoB, refusedBtoA)
	}

	// Called directly: no client certificate, a certificate from another
	// CA, and one from the right CA.
	req := &guber.GetPeerRateLimitsReq{Requests: []*guber.RateLimitReq{{
		Name: counterName, UniqueKey: "direct@0", Hits: 1, Limit: 10, Duration: 60000,
	}}}
	noCert := ours.ClientTLS()
	noCert.GetClientCertificate = nil
	for _, tc := range []struct {
		name    string
		cred    credentials.TransportCredentials
		refused bool
	}{
		{"no client certificate", credentials.NewTLS(noCert), true},
		{"another CA", credentials.NewTLS(theirs.ClientTLS()), true},
		{"the shared CA", credentials.NewTLS(ours.ClientTLS()), false},
	} {
		conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(tc.cred))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = guber.NewPeersV1Client(conn).GetPeerRateLimits(ctx, req)
		cancel()
		conn.Close()
		if refused := err != nil; refused != tc.refused {
			t.Errorf("%s: refused=%v (err %v), want refused=%v", tc.name, refused, err, tc.refused)
		}
	}
}
