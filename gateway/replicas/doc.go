// Package replicas is how a revocation is confirmed by every gateway
// replica before `kubectl apikey revoke` or the console reports it.
//
// # Design
//
// Each ready replica keeps a coordination.k8s.io Lease of its own in the
// system namespace, named as its pod (codevector-gateway-...) and labelled
// LabelReplica (Publisher). The Lease says two things:
//
//   - that the replica is alive: it is renewed every Heartbeat (10 s), and
//     a Lease not renewed within LeaseDuration (three heartbeats) no longer
//     counts. A replica stopping gracefully deletes its Lease at once, so a
//     rollout never leaves a replica that cannot confirm; one killed
//     outright stops counting within LeaseDuration, and its Lease is
//     garbage-collected with its Pod (owner reference, when the pod's name
//     and UID are in POD_NAME and POD_UID).
//   - how far its key index has applied the APIKey watch: the annotation
//     AnnotationApplied holds, per watch scope (a namespace, or "*" for the
//     watch of all namespaces), the resource version up to which every
//     change of that scope's APIKeys is in the replica's index
//     (keyindex.Index.AppliedVersions). "In the index" means refused: the
//     index applies spec.revoked and a deletionTimestamp as the watch
//     event arrives, ends the requests in flight with the key, and only
//     then is the version recorded. The annotation is written promptly,
//     at most once per PublishInterval (50 ms), when the index applies a
//     change that refuses a key (a revocation, a deletion, a full list),
//     and with every heartbeat otherwise.
//
// The waiter (Confirm) patches spec.revoked, takes the resource version the
// API server returned for it, and watches the Leases until every live
// replica's applied version for the key's namespace is at least that one.
// Resource versions are comparable integers (Kubernetes 1.35 and later
// guarantee it), and a watch delivers events in their order, so a replica
// that has applied version v has applied the revocation if it came at or
// before v.
//
// # Cost
//
// Nothing per request and nothing per key: at steady state each replica
// writes its one Lease every 10 s (10 replicas: one write a second,
// whatever the number of keys). A revocation costs each replica one or
// two Lease writes (its spec change, then the controller's status change,
// coalesced within PublishInterval); a burst of revocations coalesces the
// same way. Waiters list and watch the Leases of the system namespace (a
// dozen small objects). The alternative of a confirmation per replica in
// each APIKey's status would write every APIKey once per replica on every
// revocation, and make the status of a revoked key grow with the
// replicas; it also leaves open how the waiter learns which replicas
// exist, which needs these Leases anyway.
//
// # What counts as a replica
//
// The replicas that publish a Lease: a gateway creates its Lease before it
// reports ready (so before it takes traffic) and keeps serving during an
// API server outage even though its Lease then lapses (nobody can revoke a
// key meanwhile; the first revocation after it waits for no replica whose
// Lease has lapsed). Liveness is judged by the waiter's own clock against
// the Lease's renewTime, so a waiter whose clock is off by more than a few
// seconds misjudges it.
package replicas

import "time"

const (
	// LabelReplica marks the Leases of gateway replicas (value "true").
	LabelReplica = "gateway.codevector.io/replica"
	// AnnotationApplied is the JSON object of scope -> resource version
	// (see the package comment).
	AnnotationApplied = "gateway.codevector.io/applied-resource-versions"
	// AllNamespaces is the scope of a watch of every namespace.
	AllNamespaces = "*"
	// LeasePrefix begins every replica's Lease name.
	LeasePrefix = "codevector-gateway-"

	// Heartbeat is how often a replica renews its Lease.
	Heartbeat = 10 * time.Second
	// LeaseDuration is how long a Lease counts after its last renewal.
	LeaseDuration = 3 * Heartbeat
	// PublishInterval is the least time between two Lease writes of a
	// replica that applies revocations.
	PublishInterval = 50 * time.Millisecond
	// DefaultConfirmTimeout is how long `kubectl apikey revoke` and the
	// console wait for every replica.
	DefaultConfirmTimeout = 10 * time.Second
)
