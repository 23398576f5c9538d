package usage

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/gateway/mesh"
	"github.com/codevector/codevector/gateway/usage/usagepb"
)

// servePeer serves r's hand-off on a peer listener with cred's mutual TLS,
// as a gateway replica does, and returns its address.
func servePeer(t *testing.T, r *Recorder, cred *mesh.Credential) string {
	t.Helper()
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cred.ServerTLS())))
	r.RegisterHandOff(srv)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func peerCredential(t *testing.T) *mesh.Credential {
	t.Helper()
	c, err := mesh.NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A stopping replica's last-use times go to a running peer, not to the
// API server; the peer writes them with its next flush. A peer that is
// stopping too refuses them, and a replica with no peer to take them
// writes them itself.
func TestFinalFlushHandsLastUseToAPeer(t *testing.T) {
	ctx := context.Background()
	cred := peerCredential(t)
	used := stored.Add(90 * time.Minute)
	want := `[{"op":"test","path":"/status/lastUsedAt","value":"2026-05-01T12:00:00Z"},{"op":"add","path":"/status/lastUsedAt","value":"2026-05-01T13:30:00Z"}]`

	t.Run("a running peer takes them", func(t *testing.T) {
		stopping, e, stoppingPatches := recorderFor(t, nil)
		running, _, runningPatches := recorderFor(t, nil)
		running.clock = testingclock.NewFakeClock(used.Add(time.Minute))
		addr := servePeer(t, running, cred)
		stopping.HandOffTo(func() []string { return []string{addr} }, cred.ClientTLS())

		stopping.Record(e, used)
		stopping.finalFlush(ctx)
		if len(*stoppingPatches) != 0 {
			t.Errorf("the stopping replica wrote %q; want its times handed to the peer", *stoppingPatches)
		}
		running.Flush(ctx)
		if len(*runningPatches) != 1 || (*runningPatches)[0] != want {
			t.Errorf("the peer's next flush wrote %q, want one: %s", *runningPatches, want)
		}
	})

	t.Run("the only peer is stopping too", func(t *testing.T) {
		stopping, e, stoppingPatches := recorderFor(t, nil)
		other, _, _ := recorderFor(t, nil)
		addr := servePeer(t, other, cred)
		other.finalFlush(ctx) // nothing of its own; from now on it refuses
		stopping.HandOffTo(func() []string { return []string{addr} }, cred.ClientTLS())

		stopping.Record(e, used)
		stopping.finalFlush(ctx)
		if len(*stoppingPatches) != 1 || (*stoppingPatches)[0] != want {
			t.Errorf("the stopping replica wrote %q; want its own write, since no peer took its times: %s", *stoppingPatches, want)
		}
		if len(other.unflushed()) != 0 {
			t.Error("a stopping peer adopted times it can no longer write")
		}
	})

	// A peer of a release before the generated LastUses service answers
	// Unimplemented (docs/design.md, section 14.5).
	t.Run("the only peer does not serve the hand-off", func(t *testing.T) {
		stopping, e, stoppingPatches := recorderFor(t, nil)
		srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(cred.ServerTLS())))
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(srv.Stop)
		stopping.HandOffTo(func() []string { return []string{ln.Addr().String()} }, cred.ClientTLS())

		stopping.Record(e, used)
		stopping.finalFlush(ctx)
		if len(*stoppingPatches) != 1 || (*stoppingPatches)[0] != want {
			t.Errorf("the stopping replica wrote %q; want its own write, since no peer took its times: %s", *stoppingPatches, want)
		}
	})

	t.Run("peers accept connections but never answer", func(t *testing.T) {
		stopping, e, stoppingPatches := recorderFor(t, nil)
		var silent []string
		for range 4 {
			ln, err := net.Listen("tcp", "127.0.0.1:0") // accepted by the kernel, never served
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			silent = append(silent, ln.Addr().String())
		}
		stopping.HandOffTo(func() []string { return silent }, cred.ClientTLS())

		stopping.Record(e, used)
		// What flushEvery gives the final flush.
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		start := time.Now()
		stopping.finalFlush(ctx)
		if len(*stoppingPatches) != 1 || (*stoppingPatches)[0] != want {
			t.Errorf("patches %q; want the stopping replica's own write within its 5 s: %s", *stoppingPatches, want)
		}
		if took := time.Since(start); took > handOffTimeout+time.Second {
			t.Errorf("the final flush took %v with silent peers; the hand-off may take %v of it", took, handOffTimeout)
		}
	})

	t.Run("no peer answers", func(t *testing.T) {
		stopping, e, stoppingPatches := recorderFor(t, nil)
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		gone := ln.Addr().String()
		ln.Close()
		stopping.HandOffTo(func() []string { return []string{gone} }, cred.ClientTLS())

		stopping.Record(e, used)
		stopping.finalFlush(ctx)
		if len(*stoppingPatches) != 1 || (*stoppingPatches)[0] != want {
			t.Errorf("patches %q; want the stopping replica's own write: %s", *stoppingPatches, want)
		}
	})
}

// The hand-off answers only callers holding the replicas' shared
// credential, takes no time from the future, and drops keys it does not
// know.
func TestHandOffAdoptsOnlyWhatItShould(t *testing.T) {
	cred := peerCredential(t)
	now := stored.Add(2 * time.Hour)
	running, _, patches := recorderFor(t, nil)
	running.clock = testingclock.NewFakeClock(now)
	addr := servePeer(t, running, cred)

	invoke := func(t *testing.T, tlsConf *tls.Config, times map[string]int64) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(tlsConf)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		_, err = usagepb.NewLastUsesClient(conn).HandOff(ctx, handOffBatches(times)[0])
		return err
	}

	foreign := peerCredential(t)
	foreignClient := foreign.ClientTLS()
	foreignClient.RootCAs = cred.ServerTLS().ClientCAs // trusts the server, but holds another CA's certificate
	noCert := cred.ClientTLS()
	noCert.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &tls.Certificate{}, nil }
	for name, tlsConf := range map[string]*tls.Config{"another CA": foreignClient, "no certificate": noCert} {
		if err := invoke(t, tlsConf, map[string]int64{"ABCDEFGH": now.Unix()}); err == nil {
			t.Errorf("%s: the hand-off answered an outsider", name)
		}
	}
	if todo := running.unflushed(); len(todo) != 0 {
		t.Fatalf("an outsider planted %d last-use times", len(todo))
	}

	if err := invoke(t, cred.ClientTLS(), map[string]int64{"ABCDEFGH": now.Add(24 * time.Hour).Unix(), "UNKNOWN1": now.Unix()}); err != nil {
		t.Fatal(err)
	}
	todo := running.unflushed()
	if len(todo) != 1 || todo[0].id != "ABCDEFGH" {
		t.Fatalf("adopted %v; want the known key only", todo)
	}
	if got := time.Unix(todo[0].s.last.Load(), 0); !got.Equal(now) {
		t.Errorf("a time a day ahead was adopted as %v; want it held to the receiver's now, %v", got, now)
	}
	running.Flush(context.Background())
	if len(*patches) != 1 {
		t.Errorf("patches %q, want one", *patches)
	}
}

// Hand-offs of many keys travel in several messages under gRPC's limit.
func TestHandOffBatches(t *testing.T) {
	times := map[string]int64{}
	for i := range maxHandOffBatch + 1 {
		times[fmt.Sprintf("K%015d", i)] = time.Now().Unix()
	}
	batches := handOffBatches(times)
	if len(batches) != 2 {
		t.Fatalf("%d keys in %d batches, want 2", len(times), len(batches))
	}
	total := 0
	for _, b := range batches {
		total += len(b.Uses)
		size := proto.Size(b)
		if len(b.Uses) > maxHandOffBatch || size > 2<<20 {
			t.Errorf("a batch of %d keys, %d bytes; want at most %d keys and 2 MiB", len(b.Uses), size, maxHandOffBatch)
		}
	}
	if total != len(times) {
		t.Errorf("%d keys in the batches, want %d", total, len(times))
	}
}
