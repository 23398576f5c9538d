package scale

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/debug"
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

// BenchmarkGatewayAtScale: for each size in SCALE_KEYS (default
// 10000,100000) and each layout in SCALE_NAMESPACES (default 100; "1,100"
// for both), a fresh API server holds that many keys spread over that many
// namespaces; one gateway watching all namespaces and one restricted to the
// population's namespaces each report time to ready, heap and RSS per key,
// and authenticated throughput cold and warm, against a gateway that
// serves a namespace of its own with 100 keys (the baseline).
func BenchmarkGatewayAtScale(b *testing.B) {
	for _, n := range scaleSizes(b) {
		for _, nsCount := range envInts(b, "SCALE_NAMESPACES", []int{100}) {
			b.Run(fmt.Sprintf("keys=%d/namespaces=%d", n, nsCount), func(b *testing.B) { gatewayAtScale(b, n, nsCount) })
		}
	}
	printReport()
}

// sampleSize keys per population have real hashes and carry the traffic.
const sampleSize = 500

// scaleSizes is SCALE_KEYS (comma-separated), default 10000,100000.
func scaleSizes(b testing.TB) []int { return envInts(b, "SCALE_KEYS", []int{10000, 100000}) }

// envInts reads a comma-separated list of integers from the environment.
func envInts(b testing.TB, name string, def []int) []int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		out = append(out, n)
	}
	return out
}

func gatewayAtScale(b *testing.B, n, nsCount int) {
	env, err := testenv.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	pop := populate(b, env, fmt.Sprintf("s%d", n), n, nsCount, min(sampleSize, n))
	base := populate(b, env, "base", 100, 1, 100)
	providers := fastProviders(b)

	layout := fmt.Sprintf("%d keys in %d namespaces", n, nsCount)
	apiserver := apiserverCPU(b, env)
	small := measure(b, env, apiserver, "baseline: 100 keys, --namespaces (1)", server.Options{Providers: providers, Namespaces: base.namespaces}, 100, base.sample)
	all := measure(b, env, apiserver, layout+", all namespaces", server.Options{Providers: providers}, n, pop.sample)
	restricted := measure(b, env, apiserver, fmt.Sprintf("%s, --namespaces (%d)", layout, nsCount), server.Options{Providers: providers, Namespaces: pop.namespaces}, n, pop.sample)
	results := []*result{small, all, restricted}
	// Each gateway was stopped after its starts, so that no other one ran
	// (and weighed on the process's RSS) while one started; the warm
	// rounds need all three at once, each with its sample verified once.
	for _, r := range results {
		r.url = serve(b, env, r)
	}
	// Warm: rounds that take the gateways in turn, so load from outside
	// the benchmark falls on all of them alike; each gateway's figure is
	// its median round.
	const rounds = 5
	rps := make([][]float64, len(results))
	for range rounds {
		for i, r := range results {
			rps[i] = append(rps[i], load(r.url, r.sample, 16, 3*time.Second))
		}
	}
	for i, r := range results {
		slices.Sort(rps[i])
		r.warmRPS = rps[i][rounds/2]
	}
	for _, r := range results {
		r.warmVsBaseline = r.warmRPS / small.warmRPS
		b.Logf("%s: warm %.0f req/s (rounds %.0f), %.3f of the baseline", r.name, r.warmRPS, rps[slices.Index(results, r)], r.warmVsBaseline)
		addResult(r)
	}
}

type result struct {
	url            string
	sample         []keys.Key
	name           string
	keys           int
	ready          time.Duration   // median of readies
	readies        []time.Duration // of three starts
	listed         []time.Duration // of three starts: until every APIKey was in the index
	gatewayCPU     []time.Duration // this process's CPU time during each start, until listed: the gateway's
	apiserverCPU   []time.Duration // kube-apiserver's CPU time during each start, until listed
	load           []float64       // the 1-minute load average as each start began
	opts           server.Options
	heapPerKey     float64 // bytes
	heapMiB        float64
	peakRSSMiB     float64       // of the whole process, while the gateway started
	coldVerify     time.Duration // time until every sample key was verified once
	warmRPS        float64
	warmVsBaseline float64
}

// measure starts a gateway three times, times its first sync, weighs
// it, and verifies every sample key once (cold); the warm load comes later,
// in rounds, on a gateway serve starts again.
func measure(b *testing.B, env *testenv.Env, apiserver func() time.Duration, name string, o server.Options, n int, sample []keys.Key) *result {
	o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	r := &result{name: name, keys: n, sample: sample, opts: o}
	// Three starts, each gateway stopped before the next; the figure is the
	// median, since one start can coincide with work of the API server's
	// own (compaction, a cache refill). The third gateway is weighed and
	// verifies the sample once. RunGateway polls /readyz every 50 ms:
	// ready times are that coarse.
	for i := range 3 {
		heapBefore := heapInUse()
		// What earlier gateways freed goes back to the system first, so
		// the peak is this gateway's start and what lives besides it.
		debug.FreeOSMemory()
		resetPeakRSS()
		r.load = append(r.load, loadAverage())
		cpuBefore, apiBefore := processCPU(), apiserver()
		start := time.Now()
		url, g, stop := testenv.RunGateway(b, 5*time.Minute, env.Config, o)
		r.readies = append(r.readies, time.Since(start))
		// A gateway is ready before it has listed every APIKey
		// (keyindex/listing.go); the start's cost is counted to the end.
		waitListed(b, name, g)
		r.listed = append(r.listed, time.Since(start))
		r.gatewayCPU = append(r.gatewayCPU, processCPU()-cpuBefore)
		r.apiserverCPU = append(r.apiserverCPU, apiserver()-apiBefore)
		if got := g.Index().Len(); got < n {
			b.Fatalf("%s: ready with %d keys indexed, want %d", name, got, n)
		}
		if i < 2 {
			stop()
			continue
		}
		r.peakRSSMiB = peakRSS()
		heap := float64(int64(heapInUse()) - int64(heapBefore))
		r.heapMiB, r.heapPerKey = heap/(1<<20), heap/float64(n)
		r.coldVerify = verifyAll(b, name, url, sample)
		stop()
	}
	r.ready = slices.Sorted(slices.Values(r.readies))[1]
	b.Logf("%s: ready %v (starts: %v; every APIKey listed after %v; gateway CPU %v; API server CPU %v; load %v), heap %.1f MiB (%.0f B/key), process peak RSS while starting %.0f MiB, cold verify of %d keys %v",
		name, r.ready.Round(time.Millisecond), r.readies, r.listed, r.gatewayCPU, r.apiserverCPU, r.load, r.heapMiB, r.heapPerKey, r.peakRSSMiB, len(sample), r.coldVerify.Round(time.Millisecond))
	return r
}

// serve starts r's gateway again for the warm rounds, with its sample
// verified once, and returns its URL; it stops when the benchmark ends.
func serve(b *testing.B, env *testenv.Env, r *result) string {
	url, g, _ := testenv.RunGateway(b, 5*time.Minute, env.Config, r.opts)
	// Warm means steady: not while the gateway still lists its APIKeys.
	waitListed(b, r.name, g)
	verifyAll(b, r.name, url, r.sample)
	return url
}

// waitListed waits until gateway g holds every APIKey.
func waitListed(b *testing.B, name string, g *server.Gateway) {
	select {
	case <-g.Index().Listed():
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: APIKeys not all listed 5 minutes after the start", name)
	}
}

// verifyAll authenticates every sample key once (argon2 each), 16 at a
// time, and returns how long that took.
func verifyAll(b *testing.B, name, url string, sample []keys.Key) time.Duration {
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; int(i) < len(sample); i = next.Add(1) - 1 {
				if status := post(url, sample[i]); status != http.StatusOK {
					b.Errorf("%s: sample key %d answered %d", name, i, status)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64, MaxConnsPerHost: 64}}

func post(url string, k keys.Key) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"m","messages":[]}`))
	req.Header.Set("Authorization", "Bearer "+k.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// load runs a closed loop of conns workers for d and returns requests/s
// that succeeded.
func load(url string, sample []keys.Key, conns int, d time.Duration) float64 {
	var ok atomic.Int64
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for w := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for time.Now().Before(deadline) {
				if post(url, sample[rng.IntN(len(sample))]) == http.StatusOK {
					ok.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / d.Seconds()
}

// heapInUse is the live heap after two collections.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

var (
	reportMu sync.Mutex
	report   []*result
)

func addResult(r *result) {
	reportMu.Lock()
	defer reportMu.Unlock()
	report = append(report, r)
}

func printReport() {
	reportMu.Lock()
	defer reportMu.Unlock()
	var b strings.Builder
	b.WriteString("| gateway | keys | ready (median; the 3 starts) | every APIKey listed (the 3 starts) | gateway CPU to listed (the 3 starts) | API server CPU to listed (the 3 starts) | load average (1 min) at the starts | heap | heap/key | process peak RSS while starting | cold verify (sample) | warm req/s | warm vs baseline |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range report {
		fmt.Fprintf(&b, "| %s | %d | %v (%s) | %s | %s | %s | %s | %.1f MiB | %.0f B | %.0f MiB | %v | %.0f | %.2f |\n", r.name, r.keys, r.ready.Round(time.Millisecond), durations(r.readies),
			durations(r.listed), durations(r.gatewayCPU), durations(r.apiserverCPU), loads(r.load),
			r.heapMiB, r.heapPerKey, r.peakRSSMiB, r.coldVerify.Round(time.Millisecond), r.warmRPS, r.warmVsBaseline)
	}
	fmt.Print(b.String())
	if path := os.Getenv("BENCH_OUT"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()), 0o644)
	}
}

func durations(ds []time.Duration) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Round(100*time.Millisecond).String())
	}
	return strings.Join(out, ", ")
}

func loads(ls []float64) string {
	var out []string
	for _, l := range ls {
		out = append(out, strconv.FormatFloat(l, 'f', 1, 64))
	}
	return strings.Join(out, ", ")
}

// fastProviders points the openai provider at an upstream that answers at
// once with a tiny body, so the benchmarks measure the gateway.
func fastProviders(b testing.TB) *providers.Providers {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"x","object":"chat.completion","choices":[]}`)
	}))
	b.Cleanup(up.Close)
	providers, err := providers.ParseProviders([]byte("providers:\n  openai:\n    baseURL: "+up.URL+"\n"), nil)
	if err != nil {
		b.Fatal(err)
	}
	return providers
}
