package scale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
)

// BenchmarkLastUsedUnderLoad: 1,000 distinct keys in use across 3 gateway
// replicas for a minute. lastUsedAt writes per minute should stay near
// keys x (60 s / interval), whatever the request rate and replica count.
func BenchmarkLastUsedUnderLoad(b *testing.B) {
	const n, replicas, interval = 1000, 3, 30 * time.Second
	env, err := testenv.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	pop := populate(b, env, "lu", n, 10, n)
	providers := fastProviders(b)
	var urls []string
	var gateways []*server.Gateway
	for range replicas {
		url, g := testenv.StartGateway(b, env.Config, server.Options{Providers: providers, LastUsedInterval: interval, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		urls, gateways = append(urls, url), append(gateways, g)
	}
	// Warm every replica's verified cache (argon2 once per key per replica).
	for _, url := range urls {
		var next atomic.Int64
		var wg sync.WaitGroup
		for range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := next.Add(1) - 1; int(i) < n; i = next.Add(1) - 1 {
					post(url, pop.sample[i])
				}
			}()
		}
		wg.Wait()
	}

	// Count writes over one minute of load, after one interval to settle.
	var requests atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 2))
			for {
				select {
				case <-stop:
					return
				default:
				}
				if post(urls[rng.IntN(len(urls))], pop.sample[rng.IntN(n)]) == http.StatusOK {
					requests.Add(1)
				}
			}
		}()
	}
	time.Sleep(interval)
	writesBefore, reqBefore := lastUsedWrites(b, gateways), requests.Load()
	time.Sleep(time.Minute)
	writes, reqs := lastUsedWrites(b, gateways)-writesBefore, requests.Load()-reqBefore
	close(stop)
	wg.Wait()
	expected := float64(n) * float64(time.Minute) / float64(interval)
	b.Logf("last used: %d keys on %d replicas, %d requests in a minute, %.0f status writes (keys/interval would be %.0f; one write per request per replica would be %d)",
		n, replicas, reqs, writes, expected, reqs)
	fmt.Printf("| keys | replicas | interval | requests/min | lastUsedAt writes/min | keys x 60s/interval |\n|---|---|---|---|---|---|\n| %d | %d | %v | %d | %.0f | %.0f |\n",
		n, replicas, interval, reqs, writes, expected)
}

func lastUsedWrites(b testing.TB, gateways []*server.Gateway) float64 {
	var total float64
	for _, g := range gateways {
		families, err := g.Registry().Gather()
		if err != nil {
			b.Fatal(err)
		}
		for _, f := range families {
			if f.GetName() != "codevector_gateway_last_used_writes_total" {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "outcome" && l.GetValue() == "written" {
						total += m.GetCounter().GetValue()
					}
				}
			}
		}
	}
	return total
}
