// Package bench holds CodeVector's benchmarks (`make bench`): gateway
// throughput and added latency against a bare reverse proxy and the
// upstream itself, revocation propagation across gateway replicas, time to
// first byte of a streamed response, the manager's key issue rate and
// memory, and per-key policy (`make bench-policy`): how exactly three
// peered replicas hold keys to their per-minute limits, what counting
// costs a request, and what a replica stopped mid-minute does to a count;
// and a rollout (`make bench-rollout`): three peered replicas serving
// 10,000 keys in use replaced one at a time, latency and refusals per
// second against the steady state. Everything runs in this one test
// process against a real kube-apiserver and etcd (internal/testenv) on
// loopback, except the rollout's gateway replicas, each a process of the
// codevector binary it builds, as each pod is; docs/benchmarks.md, "Current
// figures", records the results, and how each is measured.
//
// Each benchmark ignores b.N: run them with -benchtime=1x. They print
// Markdown tables at the end of the run, and write them to the file named by
// BENCH_OUT when it is set. Knobs (environment variables, defaults in
// brackets): BENCH_DURATION [5s] per throughput or latency point,
// BENCH_ROUNDS [2] rounds of throughput and latency, BENCH_CONNS [1,16,64], BENCH_RATE
// [1000] req/s for added latency, BENCH_REVOCATIONS [100],
// BENCH_ISSUE_KEYS [1000], BENCH_MEMORY_KEYS [10000], BENCH_STREAMS [200],
// BENCH_POLICY_DURATION [2m] of full calendar minutes the policy accuracy
// and replica-stopped benchmarks judge (after the rest of the minute they
// start in), BENCH_POLICY_OVERLOAD [3] times its limit each key is driven
// at, BENCH_POLICY_RATE [200] req/s for the cost of counting (which also
// uses BENCH_ROUNDS and BENCH_DURATION);
// BENCH_ROLLOUT_KEYS [10000] keys in use in the rollout, BENCH_ROLLOUT_RATE
// [500] req/s, BENCH_ROLLOUT_STEADY [15s] of steady state measured before
// it, BENCH_ROLLOUT_SETTLE [60s] at most measured after it,
// BENCH_ROLLOUT_ROW [5s] per row of its timeline, BENCH_ROLLOUT_MODES
// [before,after] (proof sharing off, on), BENCH_ROLLOUT_FLAGS [none] more
// gateway flags for its replicas, BENCH_ROLLOUT_GOGC and
// BENCH_ROLLOUT_GODEBUG [unset] their GOGC and GODEBUG (gctrace=1 logs
// each collection), BENCH_ROLLOUT_LOGS [a temporary directory] where
// their logs go (kept when set), BENCH_ROLLOUT_CONTROL_PLANE_NICE [0] the
// nice value of kube-apiserver and etcd while it measures (19: the
// replicas come first for the CPU, as with a control plane elsewhere);
// BENCH_HEAP_PROFILE=file writes a heap profile of the fresh manager at
// BENCH_MEMORY_KEYS keys; BENCH_BREAKDOWN=1 runs a diagnostic of where the
// gateway's CPU per request goes; BENCH_LARGE_ANNOTATIONS=1 runs the
// manager over BENCH_ANNOTATED_KEYS [10000] keys with an annotation of
// BENCH_ANNOTATION_KIB [100] KiB each, on a control plane of its own
// (minutes, and GiBs in etcd and kube-apiserver).
package bench
