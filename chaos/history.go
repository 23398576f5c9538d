package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Record is one line of a chaos run's history: a request, an operation, a
// fault or a leak, each with the real-time interval in which it happened
// as the harness saw it (Start before the first byte was sent, End after
// the answer or the command returned). The history never holds a key:
// requests name the APIKey and which of its secrets (Gen) they used.
type Record struct {
	Type  RecordType `json:"type"`
	Start time.Time  `json:"start"`
	End   time.Time  `json:"end"`

	// Key is the APIKey's name (requests, operations, leaks); names are
	// never reused within a run, so a name is one APIKey UID.
	Key string `json:"key,omitempty"`
	// Gen is which secret of the key a request used, or an operation made
	// current: 0 the one created, n the one of the n-th rotation.
	Gen int `json:"gen,omitempty"`

	// Requests.
	Replica string `json:"replica,omitempty"`
	Status  int    `json:"status,omitempty"` // 0: no answer (connection refused, timeout)
	Code    string `json:"code,omitempty"`   // the error's code or type, when not 200
	Tokens  int64  `json:"tokens,omitempty"` // billed tokens the answer reported
	Stream  bool   `json:"stream,omitempty"`

	// Operations (Op) and faults (Fault).
	Op Op `json:"op,omitempty"`
	// OK: the operation succeeded and was confirmed to the user (for a
	// revocation or a deletion: by every live gateway replica).
	OK bool `json:"ok,omitempty"`
	// Policy is the key's policy after a create or a policy change.
	Policy *Policy `json:"policy,omitempty"`
	// ExpiresAt is when a created key expires, or when a rotation's grace
	// period ends for the secret it replaced (Gen-1).
	ExpiresAt time.Time `json:"expiresAt,omitzero"`
	Fault     Fault     `json:"fault,omitempty"`
	Target    string    `json:"target,omitempty"` // the replica a fault hit
	Detail    string    `json:"detail,omitempty"` // what a command said, where a leak was
}

// RecordType says what a Record is.
type RecordType string

const (
	TypeRequest RecordType = "request"
	TypeOp      RecordType = "op"
	TypeFault   RecordType = "fault"
	// TypeLeak is a full key (or its secret part) found in a log, an
	// event or a status: Detail says where, Key whose.
	TypeLeak RecordType = "leak"
	// TypeSetup says how the run was set up (Detail: the seed, the rate,
	// how the replicas found their peers), for the reader of a history.
	TypeSetup RecordType = "setup"
	// TypeUpstream is a call the fake provider answered for a key with a
	// concurrency limit (Key): Start when it arrived, End before the
	// provider began its answer, so the interval lies within the time the
	// gateway held the request's concurrency slot.
	TypeUpstream RecordType = "upstream"
	// TypeOutOfPeers is a replica (Target) out of its peers' lists, with
	// kubernetes discovery: from when its Pod was marked not ready (Start)
	// until it was marked ready again (End). Its counters had other owners
	// meanwhile.
	TypeOutOfPeers RecordType = "out-of-peers"
)

// Op is a user's or an admin's operation on a key.
type Op string

const (
	OpCreate Op = "create" // kubectl apikey create (sealed reveal); ExpiresAt when it expires
	OpRevoke Op = "revoke" // kubectl apikey revoke --yes (confirmed by the replicas)
	OpDelete Op = "delete" // kubectl apikey delete --yes (confirmed by the replicas)
	OpRotate Op = "rotate" // kubectl apikey rotate --grace G: Gen is the new secret
	OpPolicy Op = "policy" // an admin changes the key's limits or budget
)

// Fault is a failure injected on purpose.
type Fault string

const (
	FaultGatewayKill   Fault = "gateway-kill"   // SIGKILL, then restart (End: ready again)
	FaultGatewayStop   Fault = "gateway-stop"   // SIGSTOP, then SIGCONT (End: SIGCONT)
	FaultManagerKill   Fault = "manager-kill"   // SIGKILL, then restart
	FaultAPIServerStop Fault = "apiserver-stop" // kube-apiserver stopped (End: serving again)
	FaultPartition     Fault = "partition"      // a replica's API-server connection stalled
	FaultEtcdRestart   Fault = "etcd-restart"   // etcd SIGKILLed, started on its data (End: APIKeys served again)
	// FaultMachineStall is not injected: the harness itself was not
	// scheduled for more than stallThreshold (the shared machine froze),
	// so neither were, likely, the processes it tests, and its own times
	// in that span are late. Counted apart from the injected faults.
	FaultMachineStall Fault = "machine-stall"
)

// Policy is the part of a key's policy the checker holds the gateways to.
type Policy struct {
	RequestsPerMinute  int64 `json:"rpm,omitempty"`
	TokensPerMinute    int64 `json:"tpm,omitempty"`
	ConcurrentRequests int64 `json:"concurrency,omitempty"`
	// BudgetTokens is the key's budget in tokens over its whole life
	// (period total); a dollar budget is converted with the run's price.
	BudgetTokens int64 `json:"budgetTokens,omitempty"`
}

// WriteHistory writes records as JSON lines.
func WriteHistory(w io.Writer, records []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, r := range records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// ReadHistory reads what WriteHistory wrote, to check a run again.
func ReadHistory(r io.Reader) ([]Record, error) {
	var out []Record
	dec := json.NewDecoder(r)
	for line := 1; ; line++ {
		var rec Record
		if err := dec.Decode(&rec); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("history record %d: %w", line, err)
		}
		out = append(out, rec)
	}
}
