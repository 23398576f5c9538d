// Package quota counts per-key limits and budgets (requests and tokens per
// minute, spend per day, week, month or in total) exactly across any number
// of gateway replicas, without a new stateful service (docs/design.md, section 14.1).
//
// # Why gubernator
//
// Each replica embeds a gubernator v2 instance (github.com/gubernator-io/
// gubernator/v2, pinned at v2.13.0, the last release that builds with our
// Go). gubernator hashes every counter to one owning replica over the peer
// list; the owner keeps the counter in memory and applies hits one at a time
// on a single worker goroutine, and the other replicas forward to it over
// gRPC. That is a distributed counter with the consistency of a single
// process, which is what "exact across replicas" needs, and it is a library,
// not a service to run.
//
// # Behaviors used and avoided
//
//   - Token bucket, forwarded to the owner (gubernator's default, not
//     GLOBAL). GLOBAL answers from a local copy and syncs every 100 ms:
//     cheaper, but it over-admits by what the other replicas took in that
//     time, so it is never set. Leases (below) make most takes local
//     without admitting more than the limit.
//   - NO_BATCHING, and batching disabled: batching holds every forwarded
//     hit for up to BatchWait (500 µs by default) to share one RPC; measured
//     here at ~1.5 ms p50 against ~0.2 ms unbatched (BenchmarkTake).
//   - DURATION_IS_GREGORIAN is not used: in v2.13.0 it has no weeks, uses
//     the process's local time zone and gubernator's global clock. Instead
//     the Engine computes the window or UTC calendar period itself (Counter,
//     Config.Clock), puts the period start into gubernator's key and sends
//     the start as CreatedAt, so the item expires exactly at the period end
//     and a new period is a new counter. Total is a period of a century.
//
// # Settling, refunds and overdraw
//
// A request reserves an estimate (Take, or TakeAll for its rpm, tpm and
// budget counters together: all or nothing) and settles the difference when
// the real usage is known (Settle, with Counter.At set to the reservation's
// PeriodStart). gubernator's token bucket never counts past its limit, so a
// settlement is sent as a read whose amount the owner applies in its Store
// hook, atomically with the counter; see hookStore. The same hook clears
// gubernator's sticky OVER_LIMIT status, which would otherwise misreport
// takes after a refund.
//
// # Leases
//
// A forwarded take is a round trip on the request path. For rate limits
// (counters whose window is at most maxLeaseWindow, an hour), a replica
// that does not own the counter takes a lease instead: its first take in
// the window asks the owner for hits + L in one forwarded take, and the
// next takes in that window are served from the L units locally, under
// the lease's own mutex, with no round trip. When the lease is down to
// half (L/2 or less, counting top-ups already asked for) it is renewed in
// the background with what brings it back to L; when a take finds it
// short anyway, that take asks for hits plus the top-up. The owner counts
// a lease when it grants it, so leases never admit more than the limit:
// this is not GLOBAL. When the owner cannot grant hits plus top-up (the
// window's tail), the replica takes exactly, asking for the hits alone,
// for the rest of the window: the last units go to whichever replica
// asks, one at a time.
//
//	L = limit / (leaseShare × N), leaseShare = 50, N replicas in the peer
//	list; no lease when L < 2 (then every take is forwarded exactly).
//
// Among peers, a counter this replica owns is not leased (the take is
// in-process). A single replica owns every counter and leases from itself
// all the same (N = 1): a take from a lease is a mutex, one from
// gubernator a round trip through its worker pool, and through one
// replica that was most of what a limit cost a request. A
// settlement of a leased counter goes to the lease when it can: a refund
// is kept up to L (the rest is owed to the owner and given back in the
// background), an overdraw comes out of the lease when it holds enough;
// otherwise it is forwarded. A lease belongs to one counter (and limit) in
// one window: it is dropped when the window ends, when the limit changes,
// and when the peer list changes (the owner may change, and L with N).
// Decision.Remaining of a leased counter is what the owner had left at
// its last answer plus what this replica holds: takes by other replicas
// since that answer are not in it.
//
// Budgets (day, week, month, total) are not leased: a lease dropped on a
// peer change forfeits its units until its period ends, which for a
// budget is a day to forever, and every rollout would drop one per
// replica again. A budget is taken exactly, so concurrent first requests
// overrun it by at most what the requests in flight reserved and then
// used beyond their reservation, as without leases.
//
// # Accuracy bound
//
// While the peer list is stable and agreed, a counter never admits more
// than its limit: every hit and every lease is applied once, by the
// owner, in order. Counters that are not leased (budgets, limits below
// 100 × N) are exact. A leased counter may admit less than its limit, by
// what its leases hold unused when the window ends: at most L for each of
// the N-1 replicas that do not own it (for the one replica of N = 1, its
// own lease),
//
//	max(N-1, 1) × L <= limit × max(N-1, 1) / (50 × N) <= 2 % of the limit,
//
// only when load stops before the limit is reached (a window driven past
// its limit drains the leases: a replica keeps serving its lease until it
// is empty). A refund kept in a lease stays within its L; what does not
// fit is given back in the background, and is also unused if that fails
// (the owner unreachable). Each drop of a lease before the window ends (a
// peer list or limit change) forfeits what it held for the rest of the
// window, up to (N-1) × L per change.
//
// Counts may also be off, either way, when:
//
//   - the peer list changes: a counter whose owner moves resumes on the
//     new owner from the larger of Checkpoint (status.usage) and the count
//     the old owner last reported to the new one in answer to its own
//     takes (shadowCounts), so what the old owner counted after that
//     answer is lost for the rest of the period (at a steady rate over N
//     replicas, about N-1 requests, or a lease of L). A counter whose
//     ownership moves back (its owner left the list, stopped or failing
//     its probes, and returned) finds its old copy there. For a budget,
//     each replica's first request of it after it moved first hands the
//     new owner the count that replica last heard from the old one
//     (floors, in shadow.go), and the owner keeps the larger: what the
//     interim owner counted after the last answer any requesting replica
//     heard is lost, as on a move away, and so are the requests the
//     returning owner counted from its old copy before the first floor
//     came (it does not know it was out: its own list always holds
//     itself). A floor counts again what was given back (a reservation's
//     settlement) between its answer and the move. Rate counters get no
//     floors (a minute ends soon); theirs stays the old copy until the
//     window ends. Concurrency counters need none: a count goes down as
//     slots are given back, so an old answer may hold slots freed since,
//     and instead each replica counts the slots it holds again under the
//     new peer list, whose ID (PeerList) is in the counter's key
//     (gateway/policy);
//   - replicas disagree on the peer list (a new pod is Ready for some and
//     not yet for others): both may own a counter for that moment;
//   - replicas' clocks differ: near a period boundary a hit may land in the
//     neighbouring period (error bounded by the clock skew);
//   - the owner is unreachable: Take returns an error and the caller decides
//     to fail open or closed (a replica still serves what its lease holds).
//     A failing peer's client is replaced at most every redialInterval
//     (redial.go), so a restarted owner is reached as soon as it listens,
//     not when gRPC's reconnect backoff next lets the old client try.
//
// Counters live in a bounded LRU (Config.CacheSize); an evicted one comes
// back through Checkpoint. After a restart of every replica all counters
// come back through Checkpoint.
//
// # Peer authentication
//
// Peers talk over the peer mesh (gateway/mesh): its listener, mutual TLS
// with a CA shared through the Secret codevector-gateway-peers, and its
// peer list, which the engine follows (Config.Mesh). A single replica
// (no mesh) opens no port at all.
//
// # Cost per request
//
// With the owner in-process, a Take is about 10 µs p50 and 32 allocations
// (gubernator's tracing spans, Prometheus timers and worker channel
// round-trip). Forwarded, it is one gRPC call on a kept-alive connection
// plus a goroutine per forwarded counter (about 0.23 ms p50 on the
// benchmark machine). Served from a lease it is a map lookup and a mutex,
// about 0.2 µs and one allocation (BenchmarkTake remote-owner-leased); so
// a leased counter's request waits for a round trip only on the first take
// of its window and in the window's exact tail (or when a lease is short
// of a reservation larger than L/2, or the renewal has not come back). The
// renewals (each grants at least L/2, so at most 2 × limit / L = 100 × N
// per window over all replicas) and the give-backs run in the background.
// gubernator's metrics are package globals: all Engines in a process share
// them.
package quota
