package chaos

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrl "sigs.k8s.io/controller-runtime"
)

// config is a run's knobs, from the environment (make chaos sets them).
type config struct {
	duration time.Duration
	seed     uint64
	rate     int // requests per second
	keys     int // keys created before the load starts
	// discovery is how the replicas find their peers: CHAOS_PEERS, else
	// the seed's pick.
	discovery string
}

func readConfig(t *testing.T) config {
	// Unset, the run is the short one `go test ./...` and make test make:
	// 2 minutes at a rate a loaded two-core machine sends. `make chaos`
	// sets the long one's values.
	c := config{seed: uint64(time.Now().UnixNano()), rate: 100, keys: 80}
	d := cmp.Or(os.Getenv("CHAOS_DURATION"), "2m")
	var err error
	if c.duration, err = time.ParseDuration(d); err != nil || c.duration < time.Minute {
		t.Fatalf("CHAOS_DURATION=%q: want a duration of a minute or more, like 10m", d)
	}
	for name, dst := range map[string]*int{"CHAOS_RATE": &c.rate, "CHAOS_KEYS": &c.keys} {
		if v := os.Getenv(name); v != "" {
			if *dst, err = strconv.Atoi(v); err != nil || *dst <= 0 {
				t.Fatalf("%s=%q: want a positive whole number", name, v)
			}
		}
	}
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		if c.seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("CHAOS_SEED=%q: want a whole number", v)
		}
	}
	c.discovery = []string{discoveryStatic, discoveryKubernetes}[rand.New(rand.NewPCG(c.seed, 5)).IntN(2)]
	switch v := os.Getenv("CHAOS_PEERS"); v {
	case "":
	case discoveryStatic, discoveryKubernetes:
		c.discovery = v
	default:
		t.Fatalf("CHAOS_PEERS=%q: want %s or %s", v, discoveryStatic, discoveryKubernetes)
	}
	return c
}

// bounds are the tolerances this harness checks with (docs/reliability.md,
// "Chaos under load", says where each comes from).
var runBounds = Bounds{
	Propagation:   5 * time.Second,
	Recovery:      15 * time.Second,
	RetireSlack:   0,
	Margin:        time.Second,
	FlushInterval: flushInterval,
	// gateway/policy's concurrencyWindow (docs/limits-and-budgets.md).
	ConcurrencyWindow: 20 * time.Second,
}

// recorder is the history, appended to by every goroutine of the run.
type recorder struct {
	mu      sync.Mutex
	records []Record
}

func (r *recorder) add(rec Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec)
}

func (r *recorder) all() []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Record(nil), r.records...)
}

// run is one chaos run in progress.
type run struct {
	t    *testing.T
	cfg  config
	c    *cluster
	pool *pool
	h    *recorder
	seq  atomic.Int64 // names new keys
	// dropped counts the load's ticks that found every request slot busy.
	dropped atomic.Int64
}

// TestChaos runs the system for CHAOS_DURATION at CHAOS_RATE requests a
// second while it injects faults, then checks the history. With
// CHAOS_HISTORY=path it runs nothing and checks that run's history again,
// as after a change to the checker or to study a failed run.
func TestChaos(t *testing.T) {
	if path := os.Getenv("CHAOS_HISTORY"); path != "" {
		recheckHistory(t, path)
		return
	}
	cfg := readConfig(t)
	// The control plane's helpers log through controller-runtime; the
	// run's own output is its fault lines and its verdict.
	ctrl.SetLogger(logr.Discard())
	dir, err := os.MkdirTemp("", "codevector-chaos-")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("chaos: seed %d, %v at %d req/s over %d keys, %s peers; logs and history in %s\n", cfg.seed, cfg.duration, cfg.rate, cfg.keys, cfg.discovery, dir)
	r := &run{t: t, cfg: cfg, pool: newPool(), h: &recorder{}}
	now := time.Now()
	r.h.add(Record{Type: TypeSetup, Start: now, End: now,
		Detail: fmt.Sprintf("seed %d, %v at %d req/s over %d keys, %d replicas with %s peers", cfg.seed, cfg.duration, cfg.rate, cfg.keys, replicaCount, cfg.discovery)})
	r.c = startCluster(t, dir, cfg.discovery, r.h.add)
	fmt.Printf("chaos: control plane, manager and %d gateway replicas up\n", replicaCount)
	r.createInitialKeys(rand.New(rand.NewPCG(cfg.seed, 1)))
	fmt.Printf("chaos: %d keys issued; load and faults for %v\n", cfg.keys, cfg.duration)

	start := time.Now()
	end := start.Add(cfg.duration)
	// Faults stop early enough that the last one has recovered and every
	// key has been tried after it: the tail is where a lost key shows.
	faultsEnd := end.Add(-max(45*time.Second, cfg.duration/8))
	var wg sync.WaitGroup
	stopLoad := make(chan struct{})
	wg.Go(func() { r.load(rand.New(rand.NewPCG(cfg.seed, 2)), stopLoad) })
	wg.Go(func() { r.watchStalls(stopLoad) })
	var opsWG sync.WaitGroup
	opsWG.Go(func() { r.operations(rand.New(rand.NewPCG(cfg.seed, 3)), end.Add(-20*time.Second)) })
	opsWG.Go(func() { r.faults(rand.New(rand.NewPCG(cfg.seed, 4)), start.Add(15*time.Second), faultsEnd) })
	opsWG.Wait()
	time.Sleep(time.Until(end))
	r.finalProbe()
	close(stopLoad)
	wg.Wait()

	r.scanForLeaks()
	history := r.h.all()
	path := filepath.Join(dir, "history.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHistory(f, history); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fmt.Printf("chaos: load %.0f req/s sent of %d asked for, %d not sent (all %d request slots busy); load average %s\n",
		float64(countRequests(history))/cfg.duration.Seconds(), cfg.rate, r.dropped.Load(), maxInFlight, loadAverage())
	fmt.Printf("chaos: history in %s (seed %d)\n", path, cfg.seed)
	rep := printCheck(history)
	if len(rep.Violations) > 0 {
		t.Errorf("%d violations; replay the check from %s", len(rep.Violations), path)
		return
	}
	// A passing run keeps only its history: the logs are large.
	for _, name := range []string{"manager.log", "cli.log", "gw-0.log", "gw-1.log", "gw-2.log"} {
		_ = os.Remove(filepath.Join(dir, name))
	}
	certs, _ := filepath.Glob(filepath.Join(dir, "apiserver-certs-*"))
	for _, d := range certs {
		_ = os.RemoveAll(d)
	}
}

// stallThreshold is how long the harness may go unscheduled before the
// span counts as a machine stall (FaultMachineStall): on the shared
// two-core machine another suite froze it, and the replicas, for 2.6 s
// once, and a request timed out meanwhile.
const stallThreshold = 2 * time.Second

// watchStalls records the spans in which the harness was not scheduled
// for more than stallThreshold, until stop is closed.
func (r *run) watchStalls(stop <-chan struct{}) {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		now := time.Now()
		if gap := now.Sub(last); gap > stallThreshold {
			r.h.add(Record{Type: TypeFault, Fault: FaultMachineStall, Target: "machine", Start: last, End: now,
				Detail: fmt.Sprintf("the harness was not scheduled for %v", gap.Round(time.Millisecond))})
			fmt.Printf("chaos: machine stall %s..%s (load average %s)\n", stamp(last), stamp(now), loadAverage())
		}
		last = now
	}
}

// loadAverage is /proc/loadavg's first three fields: how busy the
// machine was, for the reader of a run's numbers.
func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// printCheck checks history and prints the verdict: one line per
// violation, what the history held, and the summary line last.
func printCheck(history []Record) Report {
	rep := Check(history, runBounds)
	if rep.Setup != "" {
		fmt.Printf("chaos: run: %s\n", rep.Setup)
	}
	for _, v := range rep.Violations {
		fmt.Println(v)
	}
	fmt.Printf("chaos: %d operations (%d revocations or deletions unconfirmed); worst confirmation %v, last 200 %v after a confirmed retirement; "+
		"worst budget use %.2fx (%d tokens over)\n", rep.Ops, rep.Unconfirmed, rep.WorstConfirm.Round(time.Millisecond),
		rep.LastServedAfterRetire.Round(time.Millisecond), rep.WorstBudget, max(rep.WorstOverBudget, 0))
	fmt.Printf("chaos: worst tokens-per-minute use %.2fx of a limit, worst concurrency %.2fx of a limit\n", rep.WorstTokensPerMinute, rep.WorstConcurrency)
	if rep.Stalls > 0 {
		fmt.Printf("chaos: %d machine stalls (the harness unscheduled for over %v): refusals during them and their recovery excused\n", rep.Stalls, stallThreshold)
	}
	fmt.Printf("chaos: %d requests had to be refused (retired, expired or past grace), %d had to be served (a good key, no fault to excuse a refusal)\n", rep.MustRefuse, rep.MustServe)
	fmt.Println(rep.Summary())
	return rep
}

func countRequests(history []Record) int {
	n := 0
	for _, r := range history {
		if r.Type == TypeRequest {
			n++
		}
	}
	return n
}

// recheckHistory checks the history a run wrote.
func recheckHistory(t *testing.T, path string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	history, err := ReadHistory(f)
	if err != nil {
		t.Fatal(err)
	}
	if rep := printCheck(history); len(rep.Violations) > 0 {
		t.Errorf("%d violations in %s", len(rep.Violations), path)
	}
}
