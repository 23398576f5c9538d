package scale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/keys"
	"github.com/codevector/codevector/internal/testenv"
)

// BenchmarkFlood: good keys' latency with and without a flood of bad keys
// sent as fast as this machine can: wrong secrets for real key IDs (the
// only kind that could reach argon2), random key IDs, and garbage. Reports
// p50/p99 of the good keys, the flood's rate and outcomes, and the peak RSS
// of the process (gateway, API clients and load generators together).
func BenchmarkFlood(b *testing.B) {
	env, err := testenv.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	pop := populate(b, env, "flood", 200, 4, 200)
	providers := fastProviders(b)
	url, _ := testenv.StartGateway(b, env.Config, server.Options{Providers: providers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	good := pop.sample[:20]
	for _, k := range good { // verified once, as in normal use
		if status := post(url, k); status != http.StatusOK {
			b.Fatalf("good key: %d", status)
		}
	}

	measureGood := func(d time.Duration) []time.Duration {
		var lat []time.Duration
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			start := time.Now()
			if status := post(url, good[len(lat)%len(good)]); status != http.StatusOK {
				b.Errorf("good key refused: %d", status)
			}
			lat = append(lat, time.Since(start))
			time.Sleep(5 * time.Millisecond)
		}
		slices.Sort(lat)
		return lat
	}
	baseline := measureGood(5 * time.Second)

	flooders := 32
	if s := os.Getenv("FLOOD_CONNS"); s != "" {
		flooders, _ = strconv.Atoi(s)
	}
	var sent atomic.Int64
	outcomes := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range flooders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for {
				select {
				case <-stop:
					return
				default:
				}
				var key string
				switch w % 3 {
				case 0: // wrong secret for a real key ID
					other, _ := keys.Generate()
					forged, _ := keys.WithID(other, pop.sample[rng.IntN(len(pop.sample))].ID())
					key = forged.Reveal()
				case 1: // a random, well-formed key nobody has
					k, _ := keys.Generate()
					key = k.Reveal()
				default: // garbage
					key = "cvk_" + strconv.Itoa(rng.Int())
				}
				status := postRaw(url, key)
				sent.Add(1)
				n, _ := outcomes.LoadOrStore(status, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	resetPeakRSS()
	floodStart := time.Now()
	flooded := measureGood(10 * time.Second)
	close(stop)
	wg.Wait()
	rate := float64(sent.Load()) / time.Since(floodStart).Seconds()

	p := func(l []time.Duration, q float64) time.Duration { return l[int(float64(len(l)-1)*q)] }
	var counts []string
	outcomes.Range(func(k, v any) bool {
		counts = append(counts, fmt.Sprintf("%d x %d", v.(*atomic.Int64).Load(), k))
		return true
	})
	slices.Sort(counts)
	peak := peakRSS()
	b.Logf("good keys alone: p50 %v p99 %v; during a flood of %.0f req/s (%s): p50 %v p99 %v; peak RSS %.0f MiB",
		p(baseline, .5), p(baseline, .99), rate, strings.Join(counts, ", "), p(flooded, .5), p(flooded, .99), peak)
	fmt.Printf("| good keys | p50 | p99 |\n|---|---|---|\n| alone | %v | %v |\n| during flood (%.0f req/s from %d connections: %s) | %v | %v |\n\npeak RSS of the whole benchmark process during the flood: %.0f MiB\n",
		p(baseline, .5).Round(10*time.Microsecond), p(baseline, .99).Round(10*time.Microsecond), rate, flooders, strings.Join(counts, ", "),
		p(flooded, .5).Round(10*time.Microsecond), p(flooded, .99).Round(10*time.Microsecond), peak)
}

func postRaw(url, key string) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// resetPeakRSS restarts the VmHWM count, so the peak covers the flood and
// not the set-up before it.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS is VmHWM, the process's peak resident set, in MiB.
func peakRSS() float64 {
	data, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}
