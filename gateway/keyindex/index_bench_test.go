package keyindex

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/keys"
)

// benchFacts is n issued keys and their hash Secrets, as a relist
// delivers them.
func benchFacts(n int) (apiKeys []any, hashes []any) {
	created := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range n {
		id := fmt.Sprintf("K%07d", i)
		uid := types.UID(fmt.Sprintf("00000000-0000-0000-0000-%012d", i))
		apiKeys = append(apiKeys, &listedFacts{&APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: fmt.Sprintf("key-%d", i)},
			UID: uid, KeyID: id, Owner: "alice", Prefix: keys.Prefix + id, Phase: gatewayv1alpha1.PhaseActive, CreatedAt: created}})
		hashes = append(hashes, &listedFacts{&HashFacts{SecretUID: "s-" + uid, KeyID: id, APIKeyUID: uid}})
	}
	return apiKeys, hashes
}

// BenchmarkRelist is a gateway's first list of 10,000 keys and their
// hashes, reporting the index's heap per key (the facts themselves are
// allocated before the timer, as the list decoder does).
func BenchmarkRelist(b *testing.B) {
	const n = 10_000
	apiKeys, hashes := benchFacts(n)
	b.ReportAllocs()
	var heapPerKey float64
	for b.Loop() {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		ix := New(nil)
		if err := (&hashStore{store{ix: ix}}).Replace(hashes, "1"); err != nil {
			b.Fatal(err)
		}
		if err := (&apiKeyStore{store: store{ix: ix}}).Replace(apiKeys, "1"); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		heapPerKey = float64(after.HeapAlloc-before.HeapAlloc) / n
		runtime.KeepAlive(ix)
	}
	b.ReportMetric(heapPerKey, "heapB/key")
}

// BenchmarkSetAPIKeyUnchanged is the watch event of a lastUsedAt write:
// the most frequent change, which must not rebuild more than the entry.
func BenchmarkSetAPIKeyUnchanged(b *testing.B) {
	apiKeys, hashes := benchFacts(1)
	ix := New(nil)
	f := *apiKeys[0].(*listedFacts).facts.(*APIKeyFacts)
	ix.SetAPIKey(f)
	ix.SetHash(*hashes[0].(*listedFacts).facts.(*HashFacts))
	b.ReportAllocs()
	for b.Loop() {
		f.LastUsedAt = f.LastUsedAt.Add(time.Second)
		ix.SetAPIKey(f)
	}
}
