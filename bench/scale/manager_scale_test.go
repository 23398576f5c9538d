package scale

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// BenchmarkManagerAtScale: the manager over a population of SCALE_KEYS
// (default 100000) Active keys: time for its first pass over all of them,
// its heap, then the same after a restart, and the writes each pass made
// (a resync must rewrite nothing that did not change).
func BenchmarkManagerAtScale(b *testing.B) {
	n := 100000
	if sizes := scaleSizes(b); len(sizes) > 0 {
		n = sizes[len(sizes)-1]
	}
	env, err := testenv.Start(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer env.Stop()
	populate(b, env, "m", n, 100, 10)
	if apiWrites(b) < float64(n) {
		b.Fatal("rest_client_requests_total does not count the population's writes; the write count below would prove nothing")
	}

	pass := func(label string) {
		writesBefore, reconcilesBefore := apiWrites(b), reconciles(b)
		heapBefore := heapInUse()
		start := time.Now()
		stop := env.StartManager(b, manager.Options{})
		for reconciles(b)-reconcilesBefore < float64(n) {
			if time.Since(start) > 15*time.Minute {
				b.Fatalf("%s: %v of %d keys reconciled after 15 minutes", label, reconciles(b)-reconcilesBefore, n)
			}
			time.Sleep(100 * time.Millisecond)
		}
		took := time.Since(start)
		heapAfter := heapInUse()
		writes := apiWrites(b) - writesBefore
		stop()
		heap := float64(int64(heapAfter)-int64(heapBefore)) / (1 << 20)
		b.Logf("manager %s: %d keys reconciled in %v, heap %.1f MiB, %v writes to the API server", label, n, took.Round(time.Millisecond), heap, writes)
		managerReport = append(managerReport, fmt.Sprintf("| %s | %d | %v | %.1f MiB | %.0f |", label, n, took.Round(time.Millisecond), heap, writes))
	}
	pass("first start")
	pass("restart (resync)")
	fmt.Println("| manager pass | keys | all reconciled after | heap | API writes |\n|---|---|---|---|---|")
	for _, row := range managerReport {
		fmt.Println(row)
	}
}

var managerReport []string

// apiWrites counts the mutating requests of every client in this process
// that reports to controller-runtime's registry (the manager's).
func apiWrites(b testing.TB) float64 {
	var total float64
	forEachMetric(b, "rest_client_requests_total", func(m *dto.Metric) {
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" && l.GetValue() != "GET" {
				total += m.GetCounter().GetValue()
			}
		}
	})
	return total
}

func reconciles(b testing.TB) float64 {
	var total float64
	forEachMetric(b, "controller_runtime_reconcile_total", func(m *dto.Metric) {
		total += m.GetCounter().GetValue()
	})
	return total
}

func forEachMetric(b testing.TB, name string, f func(*dto.Metric)) {
	families, err := metrics.Registry.Gather()
	if err != nil {
		b.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() == name {
			for _, m := range fam.GetMetric() {
				f(m)
			}
		}
	}
}
