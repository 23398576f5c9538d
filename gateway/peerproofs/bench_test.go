package peerproofs

import (
	"crypto/rand"
	"fmt"
	"runtime"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"

	"github.com/codevector/codevector/gateway/auth"
)

// BenchmarkFetch: what a new replica's fetch of its peer's proofs adds to
// its start at 10,000 and 100,000 keys in use (one peer, loopback, mutual
// TLS), and the heap the proofs take.
//
//	go test -run='^$' -bench=Fetch -benchtime=3x ./gateway/peerproofs/
func BenchmarkFetch(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("keys=%d", n), func(b *testing.B) {
			clk := testingclock.NewFakeClock(time.Now())
			cred := credential(b)
			old := newReplica(b, cred, clk)
			seed := make([]auth.PeerProof, n)
			epoch := clk.Now().Unix() / int64(auth.ProofEpoch/time.Second)
			for i := range seed {
				seed[i] = auth.PeerProof{KeyID: fmt.Sprintf("%016d", i), Epoch: epoch}
				rand.Read(seed[i].Binding[:])
				rand.Read(seed[i].MAC[:])
			}
			old.proofs.Import(seed, clk.Now())
			var heap uint64
			b.ResetTimer()
			for range b.N {
				fresh := newReplica(b, cred, clk)
				fresh.sharer.cfg.FetchTimeout = time.Minute
				before := liveHeap()
				if got := fresh.sharer.Fetch(b.Context(), []string{old.addr}); got != n {
					b.Fatalf("fetched %d of %d", got, n)
				}
				b.StopTimer()
				heap = liveHeap() - before
				b.StartTimer()
			}
			b.ReportMetric(float64(heap)/float64(n), "heapB/proof")
		})
	}
}

func liveHeap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkWire: a full batch (8192 proofs, 16-character key IDs) encoded
// and decoded as it crosses the peer listener, and its size per proof.
//
//	go test -run='^$' -bench=Wire ./gateway/peerproofs/
func BenchmarkWire(b *testing.B) {
	proofs := make([]auth.PeerProof, maxBatch)
	for i := range proofs {
		proofs[i] = auth.PeerProof{KeyID: fmt.Sprintf("%016d", i), Epoch: 81234}
		rand.Read(proofs[i].Binding[:])
		rand.Read(proofs[i].MAC[:])
	}
	b.Run("encode", func(b *testing.B) {
		var size int
		for range b.N {
			size = len(marshal(b, proofs))
		}
		b.ReportMetric(float64(size)/maxBatch, "B/proof")
	})
	b.Run("decode", func(b *testing.B) {
		msg := marshal(b, proofs)
		b.ResetTimer()
		for range b.N {
			if got, err := unmarshal(msg); err != nil || len(got) != maxBatch {
				b.Fatalf("decoded %d of %d proofs: %v", len(got), maxBatch, err)
			}
		}
	})
}
