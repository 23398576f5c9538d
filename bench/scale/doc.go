// Package scale measures CodeVector at 10,000 and 100,000 keys (`make
// bench-scale`): a gateway's time to ready, heap and RSS per key and auth
// throughput; the manager's memory, resync time and writes on resync; and
// last-used writes under load with several replicas. Results go to
// docs/benchmarks.md, "Scale", and docs/reliability.md.
//
// To spare hours of argon2, keys are written straight to the API server:
// APIKeys with an Active status and hash Secrets. A sample of keys (1,000,
// spread over the whole set) gets real argon2id hashes of known secrets,
// and authenticated traffic draws from that sample; the others hold
// well-formed hashes of secrets nobody knows, which cost the gateway the
// same to index.
package scale
