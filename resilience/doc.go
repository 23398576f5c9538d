// Package resilience holds the tests that break things on purpose: the API
// server going away under load, the manager killed with SIGKILL in the
// middle of a burst of key creations, a gateway replica killed under load,
// a replica that owns counters killed and restarted while a peer needs it.
// Each asserts that nothing is lost, nothing is duplicated and no key
// leaks. They run in `make test`.
package resilience
