// Package chaos runs the whole system under load while it injects faults,
// records every request, operation and fault with its real-time interval,
// and holds the history to the product's promises (Check): no revoked,
// deleted or expired key served after that was confirmed, no budget,
// per-minute (requests or tokens) or concurrency limit overrun beyond its
// documented bound, no valid key refused outside a fault, no key lost, no
// key in a log.
//
// `make chaos` runs it (TestChaos, CHAOS_DURATION, CHAOS_SEED, CHAOS_RATE,
// CHAOS_KEYS, CHAOS_PEERS); without CHAOS_DURATION TestChaos is the
// 2-minute run that `make test` makes, and CHAOS_HISTORY=path checks a
// run's history again instead. docs/reliability.md, section "Chaos under
// load", has the bounds and the last run.
package chaos
