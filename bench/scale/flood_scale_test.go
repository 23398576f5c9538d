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

	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// BenchmarkFlood: good keys' latency with and without a flood of bad keys
// sent as fast as this machine can: wrong secrets for real key IDs (the
// only kind that could reach argon2), random key IDs, and garbage. Each
// flood shape gets a fresh gateway: 32 connections with the tarpit off
// (what the gateway's CPU alone can take), then 32 and 2,000 connections
// with it on (2,000 is past the tarpit's 1,000 held refusals). Reports
// p50/p99 of the good keys, the flood's rate and outcomes, and the peak
// RSS of the process (gateway, API clients and load generators together).
func BenchmarkFlood(b *testing.B) {
	env, err := testenv.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	pop := populate(b, env, "flood", 200, 4, 200)
	providers := fastProviders(b)
	fmt.Printf("| flood | tarpit | flood req/s (steady) | flood outcomes (all) | good p50 alone | good p99 alone | good p50 in flood | good p99 in flood | good p50 / max, flood's first 2 s | peak RSS |\n|---|---|---|---|---|---|---|---|---|---|\n")
	for _, shape := range []struct {
		conns  int
		tarpit bool
	}{{32, false}, {32, true}, {2000, true}} {
		b.Run(fmt.Sprintf("conns=%d/tarpit=%v", shape.conns, shape.tarpit), func(b *testing.B) {
			flood(b, env, pop, providers, shape.conns, shape.tarpit)
		})
	}
}

func flood(b *testing.B, env *testenv.Env, pop *population, providers *providers.Providers, conns int, tarpit bool) {
	// Every flooder and every good key dials from 127.0.0.1, so the
	// per-client connection cap (256) would refuse most of the 2,000
	// connections, good keys' included: this measures the tarpit alone.
	o := server.Options{Providers: providers, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConnsPerClient: -1}
	if !tarpit {
		o.Auth.RefusalDelay = -1
	}
	url, _ := testenv.StartGateway(b, env.Config, o)
	good := pop.sample[:20]
	for _, k := range good { // verified once, as in normal use
		if status := post(url, k); status != http.StatusOK {
			b.Fatalf("good key: %d", status)
		}
	}

	// The good keys' requests, one every 5 ms, into *into for d.
	measureGood := func(d time.Duration, into *[]time.Duration) {
		for deadline := time.Now().Add(d); time.Now().Before(deadline); {
			start := time.Now()
			if status := post(url, good[len(*into)%len(good)]); status != http.StatusOK {
				b.Errorf("good key refused: %d", status)
			}
			*into = append(*into, time.Since(start))
			time.Sleep(5 * time.Millisecond)
		}
	}
	// The good keys alone, before the flood and again after it (so that
	// load from outside the benchmark, which comes and goes, weighs on the
	// baseline as on the flood), and during the flood once it has run 2 s:
	// the steady state. The flood's first 2 s are a transient of their
	// own (each client's allowance of 100 quick refusals, every connection
	// opening at once), reported separately.
	var paused atomic.Bool
	paused.Store(true)

	// The flooders' own connections: as many as there are flooders.
	floodClient := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	defer floodClient.CloseIdleConnections()
	var sent atomic.Int64
	outcomes := sync.Map{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range conns {
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
				if paused.Load() {
					time.Sleep(time.Millisecond)
					continue
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
				status := postRaw(floodClient, url, key)
				sent.Add(1)
				n, _ := outcomes.LoadOrStore(status, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	var baseline, onset, flooded []time.Duration
	measureGood(4*time.Second, &baseline)
	resetPeakRSS()
	paused.Store(false)
	measureGood(2*time.Second, &onset)
	sentBefore, start := sent.Load(), time.Now()
	measureGood(10*time.Second, &flooded)
	rate := float64(sent.Load()-sentBefore) / time.Since(start).Seconds()
	paused.Store(true)
	close(stop)
	wg.Wait()
	// Let refusals the tarpit still holds (up to 1.5 s) be answered.
	time.Sleep(1600 * time.Millisecond)
	measureGood(4*time.Second, &baseline)
	slices.Sort(baseline)
	slices.Sort(onset)
	slices.Sort(flooded)

	p := func(l []time.Duration, q float64) time.Duration {
		return l[int(float64(len(l)-1)*q)].Round(10 * time.Microsecond)
	}
	var counts []string
	outcomes.Range(func(k, v any) bool {
		counts = append(counts, fmt.Sprintf("%d x %d", v.(*atomic.Int64).Load(), k))
		return true
	})
	slices.Sort(counts)
	peak := peakRSS()
	b.Logf("%d connections, tarpit %v: good keys alone p50 %v p99 %v; in the flood's first 2 s p50 %v max %v; during a flood of %.0f req/s (%s): p50 %v p99 %v; peak RSS %.0f MiB",
		conns, tarpit, p(baseline, .5), p(baseline, .99), p(onset, .5), p(onset, 1), rate, strings.Join(counts, ", "), p(flooded, .5), p(flooded, .99), peak)
	fmt.Printf("| %d connections | %v | %.0f | %s | %v | %v | %v | %v | %v / %v | %.0f MiB |\n", conns, onOff(tarpit), rate, strings.Join(counts, ", "),
		p(baseline, .5), p(baseline, .99), p(flooded, .5), p(flooded, .99), p(onset, .5), p(onset, 1), peak)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func postRaw(c *http.Client, url, key string) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
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
