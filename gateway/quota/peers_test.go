package quota

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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

// A replica that was down for a while is reached again as soon as it is
// back, not when gRPC's reconnect backoff next lets its peers try (issue
// 28): its peers replace the client of a peer they fail to reach every
// redialInterval.
func TestRestartedPeerIsReachedAtOnce(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	cred, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	a := newPeered(t, Config{Clock: clk}, cred)
	b := newPeered(t, Config{Clock: clk}, cred)
	addrs := []string{a.Addr(), b.Addr()}
	a.SetPeers(addrs)
	b.SetPeers(addrs)

	// Counters b owns, seen from a as b goes down.
	stop(b)
	var owned []Counter
	for i := range 40 {
		c := Counter{Key: fmt.Sprintf("k%d", i), Limit: 10, Window: time.Minute}
		if _, err := a.Take(context.Background(), c, 1); err != nil {
			owned = append(owned, c)
		}
	}
	if len(owned) == 0 {
		t.Fatal("no counter of the 40 is owned by the stopped peer")
	}
	// a keeps needing b for 3 s, from four callers at once: long enough
	// for gRPC's backoff between attempts to grow to 2.56 s (1 s, times
	// 1.6 per failure), and calls in flight while clients are replaced.
	var counted atomic.Int64
	var callers sync.WaitGroup
	down := time.Now()
	for range 4 {
		callers.Go(func() {
			for time.Since(down) < 3*time.Second {
				if _, err := a.Take(context.Background(), owned[0], 1); err == nil {
					counted.Add(1)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
	callers.Wait()
	if counted.Load() > 0 {
		t.Fatalf("%d takes of a counter of the stopped peer were counted", counted.Load())
	}

	// b again, on the same address.
	m, err := mesh.New(mesh.Config{Listen: b.Addr(), Credential: cred, Log: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.Close)
	restarted := newSingle(t, Config{Clock: clk, Mesh: m})
	m.Serve()
	restarted.SetPeers(addrs)
	back := time.Now()
	for {
		_, err := a.Take(context.Background(), owned[0], 1)
		if err == nil {
			break
		}
		// The bound: redialInterval, and slack for a loaded machine.
		if time.Since(back) > time.Second {
			t.Fatalf("the restarted peer is still unreachable %v after it came back: %v", time.Since(back).Round(time.Millisecond), err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("restarted peer reached %v after it came back", time.Since(back).Round(time.Millisecond))
}
