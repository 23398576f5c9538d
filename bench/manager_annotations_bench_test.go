package bench

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// BenchmarkManagerMemoryLargeAnnotations (issue 10): the manager over
// BENCH_ANNOTATED_KEYS (10,000) Active APIKeys that each carry an
// annotation of BENCH_ANNOTATION_KIB (100) KiB, 1 GiB in all: its peak
// memory while its caches fill and its memory once settled, against the
// memory limit of config/manager/manager.yaml. The manager caches APIKeys
// without annotations (internal/manager), so the figures should stay near
// those of keys without any.
//
// It runs on a control plane of its own, with etcd's quota raised (every
// key is written twice, 2 GiB of revisions before a compaction, etcd's
// whole default quota), so the other benchmarks never list these keys. It
// takes several minutes and GiBs of memory in kube-apiserver and etcd, so
// `make bench` skips it: run it with BENCH_LARGE_ANNOTATIONS=1.
func BenchmarkManagerMemoryLargeAnnotations(b *testing.B) {
	if os.Getenv("BENCH_LARGE_ANNOTATIONS") == "" {
		b.Skip("takes minutes and GiBs on the control plane; set BENCH_LARGE_ANNOTATIONS=1 to run it")
	}
	n := envInt("BENCH_ANNOTATED_KEYS", 10000)
	kib := envInt("BENCH_ANNOTATION_KIB", 100)
	limit := managerMemoryLimit(b)

	cp, err := testenv.StartWith(context.Background(), testenv.Options{EtcdQuotaBackendBytes: 8 << 30})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := cp.Stop(); err != nil {
			b.Errorf("stopping the second control plane: %v", err)
		}
	})

	populated := populateAnnotated(b, cp, n, kib<<10)

	mt := newTable("state", "live heap MiB", "Δ live heap MiB", "RSS MiB", "Δ RSS MiB", "peak RSS MiB", "Δ peak RSS MiB", "peak heap MiB")
	base := sampleMemory()
	mt.row("no manager running (baseline)", mib(base.heapAlloc), "+0.0", mib(base.rss), "+0.0", "", "", "")

	resetPeakRSS()
	peakHeap := trackPeakHeap()
	rec0, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
	writes0 := apiWrites()
	started := time.Now()
	stop := cp.StartManager(b, manager.Options{})
	var last float64
	lastChange := time.Now()
	testenv.Eventually(b, 15*time.Minute, func() error {
		rec, _ := gather("controller_runtime_reconcile_total", map[string]string{"controller": "apikey"})
		if rec != last {
			last, lastChange = rec, time.Now()
		}
		if done := rec - rec0; done < float64(n) || time.Since(lastChange) < 2*time.Second {
			return fmt.Errorf("%.0f of %d APIKeys reconciled", done, n)
		}
		return nil
	})
	reconciledIn := lastChange.Sub(started)
	// As the process is, before a forced GC: what a container would see.
	rssSettled := procStatusField("/proc/self/status", "VmRSS") << 10
	peakRSS := procStatusField("/proc/self/status", "VmHWM") << 10
	heapPeak := peakHeap()
	settled := sampleMemory()
	writes := apiWrites() - writes0
	stop()

	managerPeak := int64(peakRSS) - int64(base.rss)
	mt.row("manager, settled over the keys", mib(settled.heapAlloc), mibSigned(int64(settled.heapAlloc)-int64(base.heapAlloc)),
		mib(rssSettled), mibSigned(int64(rssSettled)-int64(base.rss)), mib(peakRSS), mibSigned(managerPeak), mib(heapPeak))
	b.ReportMetric(float64(int64(settled.heapAlloc)-int64(base.heapAlloc))/(1<<20), "manager-heap-MiB")
	b.ReportMetric(float64(managerPeak)/(1<<20), "manager-peak-RSS-MiB")

	within := managerPeak < limit
	results.add(section{
		title:   fmt.Sprintf("Manager memory at %d keys with %d KiB annotations", n, kib),
		command: "BENCH_LARGE_ANNOTATIONS=1 " + benchCommand("BenchmarkManagerMemoryLargeAnnotations"),
		tables:  []*table{mt},
		notes: []string{
			fmt.Sprintf("%d Active APIKeys in one namespace, each with one annotation of %d KiB (%.1f GiB of annotations), written straight to the API server with their hash Secrets by %d clients in %v, before any manager runs (as the scale benchmarks do: no argon2).",
				n, kib, float64(n)*float64(kib)/(1<<20), annotatedWriters, populated.Round(time.Second)),
			fmt.Sprintf("The manager then started and reconciled all %d keys once in %v (settled: no pass for two seconds), with %.0f writes to the API server.", n, reconciledIn.Round(100*time.Millisecond), writes),
			"Live heap is HeapAlloc after two GCs; RSS is VmRSS once settled, before forcing a GC (what a container's memory accounting sees); peak RSS is VmHWM from the manager's start to settled (reset through /proc/self/clear_refs at the start); peak heap is the largest heap (live and not yet collected objects, runtime/metrics) sampled every 10 ms meanwhile.",
			"The manager runs inside the benchmark process; the Δ columns against the baseline (the process after populating, with its garbage collected and returned to the OS) are the manager's share.",
			fmt.Sprintf("Memory limit of the manager's container (config/manager/manager.yaml): %s MiB. Manager's peak: %s MiB: %s.", mib(uint64(limit)), mibSigned(managerPeak), met(within)),
			fmt.Sprintf("etcd's data directory held %s MiB at the end (quota raised to 8 GiB for this benchmark).", mib(dirSize(cp.ControlPlane.Etcd.DataDir))),
		},
	})
}

// annotatedWriters is how many clients populate at once.
const annotatedWriters = 16

// populateAnnotated writes n Active APIKeys with an annotation of size
// bytes each, and their hash Secrets, as the controller would have left
// them, with a bounded number of parallel writers.
func populateAnnotated(b *testing.B, cp *testenv.Env, n, size int) time.Duration {
	b.Helper()
	ctx := context.Background()
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = 5000, 10000 // bound by the API server, not by the client
	c, err := client.New(cfg, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	ns := "annotated"
	if err := cp.CreateNamespace(ctx, ns); err != nil {
		b.Fatal(err)
	}
	// One value for every key: the bytes that matter are in etcd, in
	// kube-apiserver and in whichever cache keeps them; here they are
	// shared by every object this process builds.
	note := strings.Repeat("annotation ", size/len("annotation ")+1)[:size]
	var next, written atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	var once sync.Once
	var firstErr error
	for range annotatedWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := writeAnnotatedKey(ctx, c, ns, fmt.Sprintf("k-%05d", i), note); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("writing key %d: %w", i, err) })
					next.Store(int64(n)) // stop the others
					return
				}
				if w := written.Add(1); w%1000 == 0 {
					fmt.Printf("populating: %d of %d annotated keys after %v\n", w, n, time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		b.Fatal(firstErr)
	}
	return time.Since(start)
}

func writeAnnotatedKey(ctx context.Context, c client.Client, ns, name, note string) error {
	k, err := keys.Generate()
	if err != nil {
		return err
	}
	ak := &gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Finalizers: []string{gatewayv1alpha1.Finalizer},
			Annotations: map[string]string{"example.com/notes": note}},
		Spec: gatewayv1alpha1.APIKeySpec{DisplayName: "annotated " + name},
	}
	if err := c.Create(ctx, ak); err != nil {
		return err
	}
	// A well-formed hash of a secret nobody knows: no key here is used.
	return testenv.WriteIssuedKey(ctx, c, ak, k, testenv.FakeHash())
}

// managerMemoryLimit is the memory limit of the manager's container in
// config/manager/manager.yaml, in bytes.
func managerMemoryLimit(b *testing.B) int64 {
	b.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(filepath.Join(root, "config", "manager", "manager.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var d appsv1.Deployment
	if err := yaml.NewYAMLOrJSONDecoder(f, 4096).Decode(&d); err != nil {
		b.Fatalf("reading config/manager/manager.yaml: %v", err)
	}
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "manager" {
			if q, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
				return q.Value()
			}
		}
	}
	b.Fatal("config/manager/manager.yaml sets no memory limit for the manager container")
	return 0
}

// resetPeakRSS restarts the kernel's count of this process's peak RSS
// (VmHWM), so that it covers only what follows.
func resetPeakRSS() {
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// trackPeakHeap samples the heap (live objects and those not yet
// collected) every 10 ms until the returned function is called, which
// returns the largest sample.
func trackPeakHeap() func() uint64 {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(s)
			if v := s[0].Value.Uint64(); v > peak.Load() {
				peak.Store(v)
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return peak.Load()
	}
}

// apiWrites counts this process's non-GET requests to the API servers.
func apiWrites() float64 {
	total := 0.0
	for method, v := range gatherBy("rest_client_requests_total", "method") {
		if method != "GET" {
			total += v
		}
	}
	return total
}

func dirSize(dir string) uint64 {
	var total uint64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				total += uint64(info.Size())
			}
		}
		return nil
	})
	return total
}
