package scale

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// population is a set of keys written to the API server.
type population struct {
	size       int
	namespaces []string
	sample     []keys.Key // keys whose plaintext we know
	sampleNS   []string   // the namespace of each sample key
}

// populate writes n Active keys spread over nsCount namespaces, sampleSize
// of them with real hashes, with `writers` concurrent clients.
func populate(b testing.TB, env *testenv.Env, prefix string, n, nsCount, sampleSize int) *population {
	b.Helper()
	ctx := context.Background()
	p := &population{size: n}
	// A client of its own with a high rate limit: populating is bound by
	// the API server, not by client-side throttling.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	for i := range nsCount {
		ns := fmt.Sprintf("%s-%03d", prefix, i)
		if err := env.CreateNamespace(ctx, ns); err != nil {
			b.Fatal(err)
		}
		p.namespaces = append(p.namespaces, ns)
	}
	sampleEvery := max(n/sampleSize, 1)
	var mu sync.Mutex
	var next, written atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				k, err := keys.Generate()
				if err != nil {
					b.Error(err)
					return
				}
				real := i%sampleEvery == 0
				if err := writeKey(ctx, c, p.namespaces[i%nsCount], fmt.Sprintf("k-%06d", i), k, real); err != nil {
					b.Errorf("writing key %d: %v", i, err)
					return
				}
				if real {
					mu.Lock()
					p.sample = append(p.sample, k)
					p.sampleNS = append(p.sampleNS, p.namespaces[i%nsCount])
					mu.Unlock()
				}
				if w := written.Add(1); w%10000 == 0 {
					b.Logf("populate: %d/%d keys written (%.0f keys/s)", w, n, float64(w)/time.Since(start).Seconds())
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("populate: %d keys in %d namespaces written in %v", n, nsCount, time.Since(start).Round(time.Second))
	return p
}

// writeKey writes one Active APIKey and its hash Secret, as the controller
// would have left them.
func writeKey(ctx context.Context, c client.Client, ns, name string, k keys.Key, realHash bool) error {
	phc := testenv.FakeHash()
	if realHash {
		// At most one hash per core at a time: 48 writers hashing at once
		// would hold 48 x 19 MiB.
		hashSlots <- struct{}{}
		s, err := keys.Hash(k, keys.DefaultParams)
		<-hashSlots
		if err != nil {
			return err
		}
		if phc, err = keys.ParsePHC(s); err != nil {
			return err
		}
	}
	return testenv.PlantKey(ctx, c, ns, name, k, phc)
}

var hashSlots = make(chan struct{}, runtime.GOMAXPROCS(0))
