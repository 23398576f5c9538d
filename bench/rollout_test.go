package bench

import (
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

// Rollout (issue 15): what replacing every gateway replica, one at a time
// as a Deployment's rollout does, costs the requests of many keys in use.
// A new replica knows every key's hash but has verified none, so until it
// has, each key's first request to it pays argon2id, behind its two
// argon2 slots.

// rolloutParams hash the planted keys: the cheapest argon2id the gateway
// accepts (keys.MinMemoryKiB, one pass), about a seventh of the cost of
// keys.DefaultParams, so that 10,000 keys verified on six replicas take
// minutes, not a quarter of an hour. docs/benchmarks.md, "Rollout", says how the figures
// scale to the default parameters.
var rolloutParams = keys.Params{Memory: keys.MinMemoryKiB, Time: 1, Threads: 1}

// rolloutMode is one way of running the replicas, a sub-benchmark each.
type rolloutMode struct {
	name         string
	proofSharing bool
}

// rolloutModes are the modes BENCH_ROLLOUT_MODES picks from (default:
// both): "before" issue 15's fix, replicas verify every key themselves
// (--no-peer-proofs); "after", replicas share verified-key proofs with
// their peers, the gateway's default.
var rolloutModes = []rolloutMode{{"before", false}, {"after", true}}

// flags are the one place a mode reaches a replica's command line.
func (m rolloutMode) flags() []string {
	if m.proofSharing {
		return nil
	}
	return []string{"--no-peer-proofs"}
}

// rolloutReplicas is the Deployment's replica count. Its rollout is
// Kubernetes' default strategy at 3 replicas: maxSurge 25% (rounded up: 1)
// and maxUnavailable 25% (rounded down: 0), so one new pod at a time, and
// an old one goes only when a new one is ready.
const rolloutReplicas = 3

// rolloutLastUsedInterval is the replicas' --last-used-interval: longer
// than a run, so no replica writes a last-use time while measured.
const rolloutLastUsedInterval = time.Hour

// rolloutClients is how many client addresses the load comes from.
const rolloutClients = 64

// chatPath is where the benchmark request goes on a gateway.
const chatPath = "/gateway/openai/v1/chat/completions"

// BenchmarkRollout: 3 peered replicas serve BENCH_ROLLOUT_KEYS keys, all
// in use (open loop, a random key per request, round robin over the ready
// replicas); once every replica has verified every key, each replica is
// replaced in turn as a rollout replaces pods. Latency and refusals are
// measured per second, against the steady state before the rollout.
// Each replica is a process of the codevector binary, as each pod is;
// the load generator and the upstream run in the benchmark's process.
func BenchmarkRollout(b *testing.B) {
	n := envInt("BENCH_ROLLOUT_KEYS", 10000)
	launcher := rolloutReplicaProcesses(b, serve(b, http.HandlerFunc(fixedUpstream)))
	start := time.Now()
	bearers := plantRolloutKeys(b, env.Namespace(b), n)
	planted := time.Since(start)
	// After planting: a running manager would issue keys of its own to
	// APIKeys it saw before their hash Secret and status were written.
	env.StartManager(b, manager.Options{}) // the peers' credential
	fmt.Printf("%s rollout: %d keys planted in %v\n", clockNow(), n, planted.Round(time.Second))
	for _, m := range selectedRolloutModes(b) {
		b.Run(m.name, func(b *testing.B) { runRollout(b, m, launcher, bearers, planted) })
	}
}

// rolloutReplicaProcesses builds the gateway and sets up its replicas'
// command line: production defaults but for the last-use interval and
// error-level logging, BENCH_ROLLOUT_FLAGS (more gateway flags,
// space-separated, e.g. "--kube-api-qps 500") and the environment knobs
// BENCH_ROLLOUT_GOGC and BENCH_ROLLOUT_GODEBUG (GOGC and GODEBUG of the
// replicas only; e.g. gctrace=1 logs each collection). Their logs go to
// BENCH_ROLLOUT_LOGS if set (kept), else to the benchmark's temporary
// directory.
func rolloutReplicaProcesses(b *testing.B, upstream string) processReplicas {
	b.Helper()
	logDir := os.Getenv("BENCH_ROLLOUT_LOGS")
	if logDir == "" {
		logDir = b.TempDir()
	} else if err := os.MkdirAll(logDir, 0o755); err != nil {
		b.Fatalf("BENCH_ROLLOUT_LOGS: %v", err)
	}
	l := newProcessReplicas(b, b.TempDir(), logDir, upstream)
	// At the default 30s, last-use writes for 10,000 keys in use would
	// keep kube-apiserver and etcd busy throughout (a few hundred patches
	// a second) and measure them, not authentication. Error-level
	// logging: a stopping replica flushes every key it used, with
	// thousands of warnings when its few seconds run out.
	l.flags = append([]string{"--last-used-interval", rolloutLastUsedInterval.String(), "--log-level", "error"}, strings.Fields(os.Getenv("BENCH_ROLLOUT_FLAGS"))...)
	for _, knob := range []struct{ from, to string }{{"BENCH_ROLLOUT_GOGC", "GOGC"}, {"BENCH_ROLLOUT_GODEBUG", "GODEBUG"}} {
		if v := os.Getenv(knob.from); v != "" {
			l.env = append(l.env, knob.to+"="+v)
		}
	}
	return l
}

// controlPlaneNice applies BENCH_ROLLOUT_CONTROL_PLANE_NICE (default 0) to
// kube-apiserver and etcd for the rest of b, and returns it. On this
// machine they share two cores with every replica; in a cluster they run
// elsewhere, and a nice of 19 comes closer to that.
func controlPlaneNice(b *testing.B) int {
	b.Helper()
	nice := envInt("BENCH_ROLLOUT_CONTROL_PLANE_NICE", 0)
	if nice == 0 {
		return 0
	}
	if err := reniceControlPlane(nice); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := reniceControlPlane(0); err != nil {
			b.Error(err)
		}
	})
	return nice
}

// replicaEnvironment describes what the rollout's replicas run with
// beyond the defaults, for the report.
func (l processReplicas) replicaEnvironment() string {
	set := strings.Fields(os.Getenv("BENCH_ROLLOUT_FLAGS"))
	for _, kv := range l.env {
		if name, _, _ := strings.Cut(kv, "="); name == "GOGC" || name == "GODEBUG" {
			set = append(set, kv)
		}
	}
	if len(set) == 0 {
		return "the Go runtime's defaults (GOGC 100, no GOMEMLIMIT: no container limit here), no other flags"
	}
	return strings.Join(set, " ")
}

func selectedRolloutModes(b *testing.B) []rolloutMode {
	list := os.Getenv("BENCH_ROLLOUT_MODES")
	if list == "" {
		list = "before,after"
	}
	var out []rolloutMode
	for _, name := range strings.Split(list, ",") {
		i := slices.IndexFunc(rolloutModes, func(m rolloutMode) bool { return m.name == strings.TrimSpace(name) })
		if i < 0 {
			b.Fatalf("BENCH_ROLLOUT_MODES: unknown mode %q (before, after)", name)
		}
		out = append(out, rolloutModes[i])
	}
	return out
}

func runRollout(b *testing.B, m rolloutMode, launcher processReplicas, bearers []string, planted time.Duration) {
	rate := envInt("BENCH_ROLLOUT_RATE", 500)
	steadyFor := envDuration("BENCH_ROLLOUT_STEADY", 15*time.Second)
	settleMax := envDuration("BENCH_ROLLOUT_SETTLE", 60*time.Second)
	const tail = 10 * time.Second // measured after every replica can skip argon2 for every key
	launcher.flags = append(slices.Clone(launcher.flags), m.flags()...)
	set := startPeeredReplicasWith(b, rolloutReplicas, rolloutReplicas, launcher)
	warmedIn := warmReplicas(b, set.replicas, bearers)
	controlPlaneNice := controlPlaneNice(b)
	fmt.Printf("%s rollout %s: %d replicas verified %d keys each in %v\n", clockNow(), m.name, rolloutReplicas, len(bearers), warmedIn.Round(time.Second))

	var lb atomic.Pointer[[]string] // the ready replicas, as a Service's endpoints
	ready := set.urls()
	lb.Store(&ready)
	var events timeline
	cpu0 := sampleRolloutCPU(set)
	load := startRandomKeyLoad(bearers, &lb, rate)
	time.Sleep(steadyFor) // the steady state is measured for a fixed time
	rolloutStart, cpu1 := time.Now(), sampleRolloutCPU(set)
	stepCPU := newReplacementCPU()
	stopNoting := make(chan struct{})
	defer close(stopNoting)
	var readyIn []string
	for old := range rolloutReplicas {
		t0, starting := time.Now(), sampleRolloutCPU(set)
		events.add(t0, fmt.Sprintf("replica %d starts", len(set.replicas)+1))
		// A Deployment waits for a new pod up to its progress deadline
		// (10 minutes by default); 10,000 keys on a loaded machine can
		// take a minute or more.
		i := set.addReplica(b, 5*time.Minute)
		isReady := sampleRolloutCPU(set)
		readyIn = append(readyIn, fmt.Sprintf("%.1fs", isReady.at.Sub(t0).Seconds()))
		events.add(isReady.at, fmt.Sprintf("%d ready after %.1fs", i+1, isReady.at.Sub(t0).Seconds()))
		stepCPU.add(fmt.Sprintf("replica %d starts", i+1), i, starting, isReady)
		go noteListed(set.replicas[i], i+1, t0, &events, stopNoting)
		ready = append(slices.Clone(ready[1:]), set.replicas[i].url)
		lb.Store(&ready)
		// As Kubernetes stops a pod: the Pod is deleted, then the kubelet
		// sends SIGTERM and waits for the process to exit.
		stopping := sampleRolloutCPU(set)
		if err := set.deletePod(old); err != nil {
			b.Fatal(err)
		}
		deleted := time.Now()
		if err := set.replicas[old].stop(); err != nil {
			b.Fatal(err)
		}
		stopped := sampleRolloutCPU(set)
		stepCPU.add(fmt.Sprintf("replica %d stops", old+1), old, stopping, stopped)
		events.add(stopped.at, fmt.Sprintf("%d stopped (Pod deleted in %.2fs, process exited %.2fs after SIGTERM)", old+1, deleted.Sub(stopping.at).Seconds(), stopped.at.Sub(deleted).Seconds()))
		fmt.Printf("%s rollout %s: replica %d replaced by %d\n", clockNow(), m.name, old+1, i+1)
	}
	rolloutEnd := time.Now()
	current := set.replicas[rolloutReplicas:]
	allVerified := time.Time{}
	for time.Since(rolloutEnd) < settleMax {
		if allVerified.IsZero() && minProven(current) >= len(bearers) {
			allVerified = time.Now()
			events.add(allVerified, "4-6 have every key verified or a proof of it")
		}
		if !allVerified.IsZero() && time.Since(allVerified) >= tail && time.Since(rolloutEnd) >= tail {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	loadEnd, cpu2 := time.Now(), sampleRolloutCPU(set)
	samples, maxLag := load.stop()
	cpuSteady, cpuRollout := rolloutCPUBetween(cpu0, cpu1), rolloutCPUBetween(cpu1, cpu2)

	steady := window(samples, rolloutStart.Add(-steadyFor), rolloutStart)
	during := window(samples, rolloutStart, rolloutEnd)
	after := window(samples, rolloutEnd, loadEnd)
	whole := window(samples, rolloutStart, loadEnd)
	limit := 2 * steady.pct(99)
	recovered, ok := recoveredAt(samples, rolloutStart, loadEnd, limit)

	summary := newTable("phase", "seconds", "requests", "200", "503", "other non-200", "p50 ms", "p99 ms", "max ms", "p99 / steady")
	phaseRow := func(name string, r rolloutWindow) {
		summary.row(name, fmt.Sprintf("%.0f", r.elapsed.Seconds()), r.ok+r.failed, r.ok, r.refused, r.failed-r.refused,
			ms(r.pct(50)), ms(r.pct(99)), ms(r.pct(100)), fmt.Sprintf("%.1f", float64(r.pct(99))/float64(steady.pct(99))))
	}
	phaseRow("steady state (every key verified on every replica)", steady)
	phaseRow("rollout: first new replica started → last old one stopped", during)
	phaseRow("after the rollout, to the end of the measurement", after)
	phaseRow("whole rollout (the two above)", whole)
	targetMet := whole.pct(99) <= limit && whole.refused == 0
	back := fmt.Sprintf("not within the %.0fs measured after the rollout", loadEnd.Sub(rolloutEnd).Seconds())
	if ok {
		back = fmt.Sprintf("%.0fs after the first new replica started (%+.0fs from the last old one stopping)",
			recovered.Sub(rolloutStart).Seconds(), recovered.Sub(rolloutEnd).Seconds())
	}

	verified := make([]string, len(current))
	for i, r := range current {
		keys, proofs := proofCounts(r)
		verified[i] = fmt.Sprintf("%d/%d", keys, proofs)
	}
	rowEvery := envDuration("BENCH_ROLLOUT_ROW", 5*time.Second)
	results.add(section{
		title:   fmt.Sprintf("Rollout (issue 15), %s: %d keys in use at %d req/s, 3 replicas replaced one at a time", m.name, len(bearers), rate),
		command: "BENCH_ROLLOUT_MODES=" + m.name + " " + benchCommand("BenchmarkRollout"),
		tables:  []*table{summary, rolloutTimeline(samples, rolloutStart.Add(-steadyFor), loadEnd, rolloutStart, rowEvery, limit, &events), byReplica(samples, rolloutStart, loadEnd, set.replicas), stepCPU.tb},
		notes: []string{
			fmt.Sprintf("Mode %s: proof sharing %s.", m.name, map[bool]string{true: "on (the default)", false: "off (--no-peer-proofs)"}[m.proofSharing]),
			fmt.Sprintf("%d Active keys planted with real argon2id hashes (m=%d KiB, t=%d, p=%d: the cheapest the gateway accepts) in %v; each of the first 3 replicas then verified every key (%v; the steady state).",
				len(bearers), rolloutParams.Memory, rolloutParams.Time, rolloutParams.Threads, planted.Round(time.Second), warmedIn.Round(time.Second)),
			fmt.Sprintf("Load: open loop at %d req/s, each request with a key drawn at random from all %d, sent round robin to the ready replicas (those /readyz had passed and not yet being stopped, as a Service's endpoints), from %d client addresses; worst send lag behind the schedule %v. Latency percentiles are of the 200 answers; 503s and other non-200 answers (and errors) are counted apart.", rate, len(bearers), rolloutClients, maxLag.Round(time.Millisecond)),
			"Rollout: for each old replica in turn a new one starts with a new pod IP, its Pod created not Ready; once its /readyz answers 200 the Pod is marked Ready (the others add it to their peers) and it joins the balancer, then the old replica leaves the balancer and is stopped as Kubernetes stops a pod (Pod deleted, then SIGTERM to its process and a wait for it to exit: graceful shutdown).",
			fmt.Sprintf("Each replica is a process of the codevector binary (`codevector gateway`, listening on its pod IP), as each pod is; the load generator and the upstream run in the benchmark's process. Replicas run with the default options (2 argon2 slots, --argon2-wait 5s) but a last-use interval of %v, so that no last-use writes (hundreds a second at this many keys in use) load the control plane while measured (a stopping replica hands the last-use times of the keys it served to a running peer, which writes them with its next flush; with no peer to take them it writes them itself, for at most 5 s), and error-level logging; Go runtime: %s. New replicas ready after %s.", rolloutLastUsedInterval, launcher.replicaEnvironment(), strings.Join(readyIn, ", ")),
			fmt.Sprintf("Measured until each new replica had every key in its verified-key cache or a proof of it (its own or a peer's), and %v more, at most %v after the rollout; keys verified / proofs held on replicas 4-6 at the end: %s.", tail, settleMax, strings.Join(verified, ", ")),
			fmt.Sprintf("Latency back to steady state (every later second: p99 ≤ 2 × the steady state's, %s ms, and only 200s): %s.", ms(limit), back),
			fmt.Sprintf("CPU in cores, steady state / rollout and after: machine %.2f / %.2f, replica processes %.2f / %.2f, this process (load generator, upstream) %.2f / %.2f, kube-apiserver+etcd %.2f / %.2f, other processes %.2f / %.2f. The table before the last splits the whole rollout's requests by the replica that answered them; the last splits its CPU by step and process.",
				cpuSteady.machine, cpuRollout.machine, cpuSteady.allReplicas(), cpuRollout.allReplicas(), cpuSteady.self, cpuRollout.self, cpuSteady.controlPlane, cpuRollout.controlPlane, cpuSteady.other, cpuRollout.other),
			fmt.Sprintf("kube-apiserver and etcd ran at nice %d (BENCH_ROLLOUT_CONTROL_PLANE_NICE; 0: sharing the cores equally with the replicas).", controlPlaneNice),
			fmt.Sprintf("Target (whole rollout p99 within 2x of the steady state, no 503): %s.", met(targetMet)),
		},
	})
	b.ReportMetric(float64(steady.pct(99))/1e6, "steady-p99-ms")
	b.ReportMetric(float64(whole.pct(99))/1e6, "rollout-p99-ms")
	b.ReportMetric(float64(whole.refused), "rollout-503s")
}
