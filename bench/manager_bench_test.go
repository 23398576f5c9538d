package bench

import (
	"context"
	"fmt"
	"maps"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// Manager benchmarks (issue 2): how fast one manager issues keys, and what
// it holds in memory at 10,000 keys. They run after the gateway benchmarks
// (files run in name order) with no gateway running.

// BenchmarkManagerIssueRate: keys per second from create to Active for a
// burst of keys, default argon2 parameters, one manager.
func BenchmarkManagerIssueRate(b *testing.B) {
	n := envInt("BENCH_ISSUE_KEYS", 1000)
	// The manager's own requests by verb and resource, through a counting
	// transport on its rest.Config (the benchmark's clients use another).
	var counter testenv.RequestCounter
	testenv.RunManager(b, counter.Wrap(env.Config), manager.Options{Argon2: keys.DefaultParams})
	ns := env.Namespace(b)
	req0 := counter.Snapshot()
	r := issueBurst(b, ns, "rate", n)
	byKind := testenv.PerKey(req0, counter.Snapshot(), n)
	fmt.Printf("manager API requests per key: %s\n", byKind)
	rate := r.rate()
	b.ReportMetric(rate, "keys/s")
	tb := issueTable()
	tb.row(r.cells(n, met(rate >= 50))...)
	results.add(section{
		title:   fmt.Sprintf("Manager: keys per second from create to Active (%d keys)", n),
		command: benchCommand("BenchmarkManagerIssueRate"),
		tables:  []*table{tb},
		notes: append(issueNotes(),
			fmt.Sprintf("The manager's API requests per key by verb and resource (counted on its transport, watches included): %s.", byKind),
			fmt.Sprintf("Target ≥ 50 keys/s: %s.", met(rate >= 50))),
	})
}

// burst is what issueBurst measured.
type burst struct {
	n                     int
	createdIn, allActive  time.Duration
	steady                float64 // keys/s between 10% and 90% Active
	latencies             []time.Duration
	hashSeconds           float64 // mean argon2id time per hash
	hashes                uint64
	reconciles, reconErrs float64
	cpu                   cpuUse
	// requests counts API requests of this process by HTTP method during the
	// burst, less the benchmark's own creates.
	requests map[string]float64
}

func (r burst) rate() float64 { return float64(r.n) / r.allActive.Seconds() }

// issueBurst creates n APIKeys as fast as 8 clients can and waits until
// the running manager has made every one Active.
func issueBurst(b *testing.B, ns, prefix string, n int) burst {
	b.Helper()
	w := watchActive(b, ns, n)
	hashSum0, hashes0 := gather("codevector_manager_argon2_hash_seconds", nil)
	rec0, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
	err0, _ := gather("controller_runtime_reconcile_errors_total", map[string]string{"controller": "apikey"})
	req0 := gatherBy("rest_client_requests_total", "method")
	cpu0 := sampleCPU()
	start := time.Now()
	created := createKeys(b, ns, prefix, n, 8)
	createdIn := time.Since(start)
	progress := time.NewTicker(30 * time.Second)
	defer progress.Stop()
	deadline := time.After(time.Duration(n)*100*time.Millisecond + time.Minute)
wait:
	for {
		select {
		case <-w.done:
			break wait
		case <-progress.C:
			fmt.Printf("issuing: %d of %d keys Active after %v\n", w.count(), n, time.Since(start).Round(time.Second))
		case <-deadline:
			b.Fatalf("only %d of %d keys Active after %v", w.count(), n, time.Since(start).Round(time.Second))
		}
	}
	cpu1 := sampleCPU()
	w.stop()
	hashSum1, hashes1 := gather("codevector_manager_argon2_hash_seconds", nil)
	rec1, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
	err1, _ := gather("controller_runtime_reconcile_errors_total", map[string]string{"controller": "apikey"})

	r := burst{n: n, createdIn: createdIn, cpu: cpuBetween(cpu0, cpu1), reconciles: rec1 - rec0, reconErrs: err1 - err0, requests: map[string]float64{}}
	for method, v := range gatherBy("rest_client_requests_total", "method") {
		r.requests[method] = v - req0[method]
	}
	r.requests["POST"] -= float64(n) // the benchmark's creates
	var times []time.Time
	for name, at := range w.activeAt() {
		times = append(times, at)
		r.latencies = append(r.latencies, at.Sub(created[name]))
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	slices.Sort(r.latencies)
	r.allActive = times[len(times)-1].Sub(start)
	lo, hi := n/10, n*9/10
	if hi > lo {
		r.steady = float64(hi-lo) / times[hi].Sub(times[lo]).Seconds()
	}
	if r.hashes = hashes1 - hashes0; r.hashes > 0 {
		r.hashSeconds = (hashSum1 - hashSum0) / float64(r.hashes)
	}
	fmt.Printf("issued %d keys in %v: %.1f keys/s\n", n, r.allActive.Round(time.Millisecond), r.rate())
	return r
}

func issueTable() *table {
	return newTable("keys", "created in s", "all Active after s", "keys/s", "keys/s 10%→90%", "create→Active p50 s", "p99 s",
		"argon2 ms/hash", "reconciles/key", "API requests/key", "reconcile errors", "CPU cores: machine", "this process", "apiserver+etcd", "other", "target ≥ 50 keys/s")
}

func (r burst) cells(n int, goal string) []any {
	return []any{n, fmt.Sprintf("%.1f", r.createdIn.Seconds()), fmt.Sprintf("%.1f", r.allActive.Seconds()),
		fmt.Sprintf("%.1f", r.rate()), fmt.Sprintf("%.1f", r.steady),
		fmt.Sprintf("%.1f", percentile(r.latencies, 50).Seconds()), fmt.Sprintf("%.1f", percentile(r.latencies, 99).Seconds()),
		fmt.Sprintf("%.1f", r.hashSeconds*1000), fmt.Sprintf("%.2f", r.reconciles/float64(n)), r.requestsPerKey(), fmt.Sprintf("%.0f", r.reconErrs),
		fmt.Sprintf("%.2f", r.cpu.machine), fmt.Sprintf("%.2f", r.cpu.self), fmt.Sprintf("%.2f", r.cpu.controlPlane), fmt.Sprintf("%.2f", r.cpu.other), goal}
}

// requestsPerKey describes the manager's API requests per issued key.
func (r burst) requestsPerKey() string {
	var parts []string
	for _, m := range []string{"GET", "LIST", "POST", "PATCH", "PUT", "DELETE"} {
		if v := r.requests[m]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", m, v/float64(r.n)))
		}
	}
	return strings.Join(parts, ", ")
}

func issueNotes() []string {
	return []string{
		"All keys are created at once by 8 parallel clients (as fast as the API server takes them); the clock runs from the first create to the last key seen Active through a watch. `keys/s` is keys ÷ that time; `10%→90%` is the rate in the middle of the burst, without start-up and tail.",
		"Default argon2id parameters (m=19456 KiB, t=2, p=1), the manager's defaults (2 hashes at a time on 2 cores, 8 workers, client QPS 300).",
		"`argon2 ms/hash` is the manager's own histogram (codevector_manager_argon2_hash_seconds): the wall time of one hash, which grows when the API server, etcd and the benchmark's clients compete for the same two cores.",
		"`this process` is the benchmark process: the manager plus the clients creating and watching the keys.",
		"`API requests/key` counts the manager's requests to the API server per issued key, by HTTP method (client-go's rest_client_requests_total, less the benchmark's own creates; POST includes the events the manager records).",
	}
}

// BenchmarkManagerMemory: the manager's heap and RSS with 10,000 Active
// keys, created normally and issued by the manager; then a fresh manager
// over the same keys (a restart or fail-over); then a gateway replica.
func BenchmarkManagerMemory(b *testing.B) {
	want := envInt("BENCH_MEMORY_KEYS", 10000)
	ctx := context.Background()
	count := func() (total, active int) {
		var list gatewayv1alpha1.APIKeyList
		if err := env.Client.List(ctx, &list); err != nil {
			b.Fatal(err)
		}
		for _, k := range list.Items {
			if k.Status.Phase == gatewayv1alpha1.PhaseActive {
				active++
			}
		}
		return len(list.Items), active
	}
	_, existing := count()
	toCreate := max(0, want-existing)

	mt := newTable("state", "APIKeys (Active)", "live heap MiB", "Δ live heap MiB", "heap in use MiB", "RSS MiB", "Δ RSS MiB")
	memRow := func(state, keysCell string, m, base memSample) {
		mt.row(state, keysCell, mib(m.heapAlloc), mibSigned(int64(m.heapAlloc)-int64(base.heapAlloc)),
			mib(m.heapInuse), mib(m.rss), mibSigned(int64(m.rss)-int64(base.rss)))
	}
	keysCell := func() string {
		total, active := count()
		return fmt.Sprintf("%d (%d)", total, active)
	}

	before := sampleMemory()
	memRow("no manager running (baseline)", keysCell(), before, before)
	stop := env.StartManager(b, manager.Options{Argon2: keys.DefaultParams})
	ns := env.Namespace(b)
	var r burst
	if toCreate > 0 {
		r = issueBurst(b, ns, "mem", toCreate)
	}
	afterIssue := sampleMemory()
	memRow(fmt.Sprintf("manager, after issuing %d keys", toCreate), keysCell(), afterIssue, before)
	stop()

	idle := sampleMemory()
	memRow("manager stopped (new baseline)", keysCell(), idle, idle)
	total, _ := count()
	rec0, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
	restartedAt := time.Now()
	stop = env.StartManager(b, manager.Options{Argon2: keys.DefaultParams})
	// Settled: every APIKey reconciled once and no pass for two seconds.
	var last float64
	lastChange := time.Now()
	testenv.Eventually(b, 5*time.Minute, func() error {
		rec, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
		if rec != last {
			last, lastChange = rec, time.Now()
		}
		if done := rec - rec0; done < float64(total) || time.Since(lastChange) < 2*time.Second {
			return fmt.Errorf("%.0f of %d APIKeys reconciled", done, total)
		}
		return nil
	})
	resyncIn := lastChange.Sub(restartedAt)
	restarted := sampleMemory()
	if path := os.Getenv("BENCH_HEAP_PROFILE"); path != "" {
		// Where the fresh manager's heap goes: `go tool pprof -sample_index=inuse_space`.
		if err := writeHeapProfile(path); err != nil {
			b.Error(err)
		}
	}
	memRow("fresh manager, after its initial resync", keysCell(), restarted, idle)
	cp := controlPlaneRSS()
	stop()

	gwBase := sampleMemory()
	gw := startGateway(b, benchProviders(b, "http://127.0.0.1:9", false))
	testenv.Eventually(b, 2*time.Minute, func() error {
		if n := gw.Index().Len(); n < want {
			return fmt.Errorf("gateway index holds %d keys", n)
		}
		return nil
	})
	gwMem := sampleMemory()
	memRow("one gateway replica (no manager), index synced", keysCell(), gwMem, gwBase)
	b.ReportMetric(float64(int64(restarted.heapAlloc)-int64(idle.heapAlloc))/(1<<20), "manager-heap-MiB")

	var tables []*table
	notes := []string{"Run alone, this benchmark creates all the keys itself; in `make bench` it tops up what the earlier benchmarks left to the target count."}
	if toCreate > 0 {
		it := issueTable()
		it.row(r.cells(toCreate, met(r.rate() >= 50))...)
		tables = append(tables, it)
		notes = append(notes, fmt.Sprintf("The first table is the issue rate of this second, larger burst (%d keys on top of the %d Active keys earlier benchmarks left).", toCreate, existing))
	}
	tables = append(tables, mt)
	notes = append(notes,
		"Heap is runtime.MemStats after two runtime.GC() calls: `live heap` is HeapAlloc, `heap in use` HeapInuse; RSS is VmRSS of /proc/self/status after debug.FreeOSMemory().",
		"The manager runs inside the benchmark process, so absolute figures include the benchmark's own client, the control-plane harness and whatever the earlier benchmarks left on the heap; the Δ columns against the row marked as baseline are the manager's (or gateway's) share. The second manager's Δ is the steady state at this key count: a restarted or failed-over manager.",
		fmt.Sprintf("Per Active key: %.1f KiB of live heap in the fresh manager, %.1f KiB in a gateway replica.",
			float64(int64(restarted.heapAlloc)-int64(idle.heapAlloc))/1024/float64(want),
			float64(int64(gwMem.heapAlloc)-int64(gwBase.heapAlloc))/1024/float64(want)),
		fmt.Sprintf("The fresh manager took %v to reconcile all %d APIKeys once (its initial resync).", resyncIn.Round(100*time.Millisecond), total),
		"Each issued key that nobody revealed keeps its reveal Secret for the 10-minute reveal window, so at this moment the manager's Secret cache holds two Secrets per key (hash and reveal; data stripped). In steady state most reveal Secrets are gone.",
		fmt.Sprintf("kube-apiserver RSS %s MiB, etcd RSS %s MiB at this point.", mib(cp["kube-apiserver"]), mib(cp["etcd"])),
	)
	results.add(section{
		title:   fmt.Sprintf("Manager memory at %d keys", want),
		command: benchCommand("BenchmarkManagerMemory"),
		tables:  tables,
		notes:   notes,
	})
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// activeWatcher records when each APIKey of a namespace is first seen
// Active, from a watch (polling a list of thousands of keys would load the
// API server the manager is being measured against).
type activeWatcher struct {
	mu     sync.Mutex
	active map[string]time.Time
	want   int
	done   chan struct{}
	cancel context.CancelFunc
}

func watchActive(b *testing.B, ns string, want int) *activeWatcher {
	b.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	wi, err := wc.Watch(ctx, &gatewayv1alpha1.APIKeyList{}, client.InNamespace(ns))
	if err != nil {
		b.Fatal(err)
	}
	w := &activeWatcher{active: make(map[string]time.Time, want), want: want, done: make(chan struct{}), cancel: cancel}
	go w.run(ctx, wc, ns, wi)
	return w
}

func (w *activeWatcher) run(ctx context.Context, wc client.WithWatch, ns string, wi watch.Interface) {
	defer wi.Stop()
	for ev := range wi.ResultChan() {
		if k, ok := ev.Object.(*gatewayv1alpha1.APIKey); ok && k.Status.Phase == gatewayv1alpha1.PhaseActive {
			w.see(k.Name, time.Now())
		}
	}
	// The API server ended the watch early (it does after 30-60 minutes):
	// fall back to listing once a second. Keys first seen this way are
	// timed to within that second.
	for ctx.Err() == nil {
		var list gatewayv1alpha1.APIKeyList
		if err := wc.List(ctx, &list, client.InNamespace(ns)); err == nil {
			now := time.Now()
			for _, k := range list.Items {
				if k.Status.Phase == gatewayv1alpha1.PhaseActive {
					w.see(k.Name, now)
				}
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (w *activeWatcher) see(name string, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.active[name]; ok {
		return
	}
	w.active[name] = at
	if len(w.active) == w.want {
		close(w.done)
	}
}

func (w *activeWatcher) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.active)
}

func (w *activeWatcher) activeAt() map[string]time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return maps.Clone(w.active)
}

func (w *activeWatcher) stop() { w.cancel() }

// gather sums a metric of controller-runtime's registry (where the
// manager's metrics live) over the series whose labels match: the value of
// counters and gauges, the sample sum of histograms, and their sample
// count.
func gather(name string, labels map[string]string) (sum float64, count uint64) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		return 0, 0
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += m.Histogram.GetSampleSum()
				count += m.Histogram.GetSampleCount()
			}
		}
	}
	return sum, count
}

// gatherBy sums a metric of controller-runtime's registry by the value of
// one label.
func gatherBy(name, label string) map[string]float64 {
	out := map[string]float64{}
	families, err := metrics.Registry.Gather()
	if err != nil {
		return out
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label {
					out[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	have := map[string]string{}
	for _, l := range m.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}
