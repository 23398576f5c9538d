package chaos

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	t0     = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	bounds = Bounds{Propagation: 2 * time.Second, Recovery: 10 * time.Second, Margin: time.Second, FlushInterval: 2 * time.Second, ConcurrencyWindow: 20 * time.Second}
)

// at is t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func op(o Op, key string, start, end float64, ok bool) Record {
	return Record{Type: TypeOp, Op: o, Key: key, Start: at(start), End: at(end), OK: ok}
}

func req(key string, gen int, start float64, status int) Record {
	return Record{Type: TypeRequest, Key: key, Gen: gen, Replica: "gw-0", Start: at(start), End: at(start + 0.05), Status: status}
}

func onReplica(r Record, replica string) Record { r.Replica = replica; return r }

// outOfPeers is replica gw-1 out of its peers' lists from start to end.
func outOfPeers(start, end float64) Record {
	return Record{Type: TypeOutOfPeers, Target: "gw-1", Start: at(start), End: at(end)}
}

// upstream is the provider holding one of key's requests from start to end.
func upstream(key string, start, end float64) Record {
	return Record{Type: TypeUpstream, Key: key, Start: at(start), End: at(end)}
}

func fault(f Fault, start, end float64) Record {
	return Record{Type: TypeFault, Fault: f, Target: "gw-1", Start: at(start), End: at(end)}
}

func kinds(r Report) []string {
	var out []string
	for _, v := range r.Violations {
		out = append(out, v.Kind)
	}
	return out
}

// Each promise, with a history that keeps it and one that breaks it: the
// checker must pass the first and name the broken promise in the second.
func TestCheckFindsEachViolation(t *testing.T) {
	withRPM := func(r Record, rpm int64) Record { r.Policy = &Policy{RequestsPerMinute: rpm}; return r }
	withBudget := func(r Record, tokens int64) Record { r.Policy = &Policy{BudgetTokens: tokens}; return r }
	withTPM := func(r Record, tpm int64) Record { r.Policy = &Policy{TokensPerMinute: tpm}; return r }
	withConcurrency := func(r Record, n int64) Record { r.Policy = &Policy{ConcurrentRequests: n}; return r }
	tokens := func(r Record, n int64) Record { r.Tokens = n; return r }
	expiring := func(r Record, s float64) Record { r.ExpiresAt = at(s); return r }
	rotation := func(r Record, gen int, graceEnd float64) Record { r.Gen, r.ExpiresAt = gen, at(graceEnd); return r }
	cases := []struct {
		name    string
		history []Record
		want    []string
	}{
		{"a good key served", []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 5, 200)}, nil},
		{"served before the revocation was confirmed", []Record{op(OpCreate, "a", 0, 1, true), op(OpRevoke, "a", 10, 11, true), req("a", 0, 10.5, 200), req("a", 0, 12, 401)}, nil},
		{"served after the revocation was confirmed", []Record{op(OpCreate, "a", 0, 1, true), op(OpRevoke, "a", 10, 11, true), req("a", 0, 11.2, 200)}, []string{KindRetiredServed}},
		{"served after the deletion was confirmed", []Record{op(OpCreate, "a", 0, 1, true), op(OpDelete, "a", 10, 11, true), req("a", 0, 30, 200)}, []string{KindRetiredServed}},
		{"an unconfirmed revocation promises nothing", []Record{op(OpCreate, "a", 0, 1, true), op(OpRevoke, "a", 10, 11, false), req("a", 0, 30, 200), req("a", 0, 31, 401)}, nil},
		{"served after expiry", []Record{expiring(op(OpCreate, "a", 0, 1, true), 20), req("a", 0, 19, 200), req("a", 0, 20.5, 200)}, []string{KindExpiredServed}},
		{"refused at expiry", []Record{expiring(op(OpCreate, "a", 0, 1, true), 20), req("a", 0, 18, 200), req("a", 0, 19.5, 401), req("a", 0, 21, 401)}, nil},
		{"old secret served in its grace period", []Record{op(OpCreate, "a", 0, 1, true), rotation(op(OpRotate, "a", 10, 11, true), 1, 30), req("a", 0, 25, 200), req("a", 1, 25, 200)}, nil},
		{"old secret served after its grace period", []Record{op(OpCreate, "a", 0, 1, true), rotation(op(OpRotate, "a", 10, 11, true), 1, 30), req("a", 0, 31, 200)}, []string{KindExpiredServed}},
		{"old secret refused in its grace period", []Record{op(OpCreate, "a", 0, 1, true), rotation(op(OpRotate, "a", 10, 11, true), 1, 30), req("a", 0, 20, 401)}, []string{KindValidRefused}},
		{"valid key refused", []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 5, 401), req("a", 0, 6, 200)}, []string{KindValidRefused}},
		{"valid key unanswered", []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 5, 0), req("a", 0, 6, 200)}, []string{KindValidRefused}},
		{"refused during a fault", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultGatewayKill, 4, 6), onReplica(req("a", 0, 5, 0), "gw-1")}, nil},
		{"refused by a healthy replica while another was down", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultGatewayKill, 4, 6), req("a", 0, 5, 0), req("a", 0, 30, 200)}, []string{KindValidRefused}},
		{"a budget refused while a replica was down", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100), fault(FaultGatewayStop, 4, 6), req("a", 0, 5, 503), req("a", 0, 30, 200)}, nil},
		{"refused within the recovery after a fault", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultAPIServerStop, 4, 6), req("a", 0, 15, 503)}, nil},
		{"refused after the recovery", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultPartition, 4, 6), req("a", 0, 17, 503), req("a", 0, 18, 200)}, []string{KindValidRefused}},
		{"a manager outage excuses no refusal", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultManagerKill, 4, 6), req("a", 0, 5, 401)}, []string{KindValidRefused}},
		{"refused before the creation propagated", []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 2, 401)}, nil},
		{"budget kept", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100), tokens(req("a", 0, 5, 200), 60), tokens(req("a", 0, 6, 200), 40), req("a", 0, 7, 429)}, nil},
		{"budget overrun", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100), tokens(req("a", 0, 5, 200), 60), tokens(req("a", 0, 6, 200), 41)}, []string{KindBudgetOverrun}},
		{"budget overrun by what a killed replica had not flushed", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), fault(FaultGatewayKill, 6, 8), tokens(req("a", 0, 20, 200), 60)}, nil},
		{"budget overrun beyond what a kill allows", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 2, 200), 60), fault(FaultGatewayKill, 6, 8), tokens(req("a", 0, 20, 200), 60)}, []string{KindBudgetOverrun}},
		{"rate limit kept", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), req("a", 0, 5, 200), req("a", 0, 6, 200), req("a", 0, 7, 429)}, nil},
		{"rate limit overrun", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), req("a", 0, 5, 200), req("a", 0, 6, 200), req("a", 0, 7, 200)}, []string{KindRateOverrun}},
		{"rate limit overrun while a replica was down", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), fault(FaultGatewayStop, 30, 35),
			req("a", 0, 5, 200), req("a", 0, 6, 200), req("a", 0, 7, 200)}, nil},
		{"rate limit overrun while a killed replica's peers reconnect", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), fault(FaultGatewayKill, -10, -2),
			req("a", 0, 5, 200), req("a", 0, 6, 200), req("a", 0, 7, 200)}, nil},
		{"rate limit overrun after the recovery", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), fault(FaultGatewayKill, -30, -20),
			req("a", 0, 5, 200), req("a", 0, 6, 200), req("a", 0, 7, 200)}, []string{KindRateOverrun}},
		{"rate limit raised by an admin", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 2), withRPM(op(OpPolicy, "a", 3, 4, true), 3),
			req("a", 0, 7, 200), req("a", 0, 8, 200), req("a", 0, 9, 200)}, nil},
		{"tokens per minute kept", []Record{withTPM(op(OpCreate, "a", 0, 1, true), 100), tokens(req("a", 0, 5, 200), 60), tokens(req("a", 0, 6, 200), 40), req("a", 0, 7, 429)}, nil},
		{"tokens per minute overrun", []Record{withTPM(op(OpCreate, "a", 0, 1, true), 100), tokens(req("a", 0, 5, 200), 60), tokens(req("a", 0, 6, 200), 41)}, []string{KindTPMOverrun}},
		{"tokens per minute overrun across two minutes is two minutes", []Record{withTPM(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 50, 200), 60), tokens(req("a", 0, 61, 200), 60)}, nil},
		{"tokens per minute overrun while a replica was down", []Record{withTPM(op(OpCreate, "a", 0, 1, true), 100), fault(FaultGatewayKill, 30, 35),
			tokens(req("a", 0, 5, 200), 60), tokens(req("a", 0, 6, 200), 41)}, nil},
		{"concurrency kept", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), upstream("a", 5, 5.3), upstream("a", 5.1, 5.4), upstream("a", 5.35, 5.6)}, nil},
		{"concurrency overrun", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), upstream("a", 5, 5.3), upstream("a", 5.1, 5.4), upstream("a", 5.2, 5.6)}, []string{KindConcurrencyOverrun}},
		{"concurrency overrun across the counter's restarts", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2),
			upstream("a", 299.5, 302.5), upstream("a", 299.6, 302.5), upstream("a", 302, 302.3)}, []string{KindConcurrencyOverrun}},
		{"concurrency overrun while a replica was stopped", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), fault(FaultGatewayStop, 4, 5.2),
			upstream("a", 5, 5.3), upstream("a", 5.1, 5.4), upstream("a", 5.2, 5.6)}, nil},
		{"budget overrun by what was spent as a counter's owner left the peer lists", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), outOfPeers(10, 20), tokens(req("a", 0, 8, 200), 50), tokens(req("a", 0, 40, 200), 10)}, nil},
		{"budget overrun by what was spent as a counter's owner came back", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), outOfPeers(10, 20), tokens(req("a", 0, 18, 200), 25), tokens(req("a", 0, 22, 200), 25), tokens(req("a", 0, 40, 200), 10)}, nil},
		{"budget overrun by what was spent in the middle of an owner's absence", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), outOfPeers(10, 20), tokens(req("a", 0, 15, 200), 50), tokens(req("a", 0, 40, 200), 10)}, []string{KindBudgetOverrun}},
		{"budget overrun within a short absence", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), outOfPeers(10, 14), tokens(req("a", 0, 12, 200), 50), tokens(req("a", 0, 40, 200), 10)}, nil},
		{"budget overrun beyond what an owner's absence allows", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 5, 200), 60), outOfPeers(10, 20), tokens(req("a", 0, 15, 200), 10), tokens(req("a", 0, 40, 200), 50)}, []string{KindBudgetOverrun}},
		{"concurrency over once the counter changed owner in its window", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), outOfPeers(10, 12),
			upstream("a", 40, 40.3), upstream("a", 40.1, 40.4), upstream("a", 40.2, 40.6), upstream("a", 40.25, 40.6)}, nil},
		{"concurrency over twice the limit after an owner change", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), outOfPeers(10, 12),
			upstream("a", 40, 40.3), upstream("a", 40.1, 40.4), upstream("a", 40.2, 40.6), upstream("a", 40.25, 40.6), upstream("a", 40.28, 40.6)}, []string{KindConcurrencyOverrun}},
		{"concurrency over once every replica counted its slots at the new owner", []Record{withConcurrency(op(OpCreate, "a", 0, 1, true), 2), outOfPeers(10, 12),
			upstream("a", 43, 43.3), upstream("a", 43.1, 43.4), upstream("a", 43.2, 43.6)}, []string{KindConcurrencyOverrun}},
		{"unanswered during a machine stall", []Record{op(OpCreate, "a", 0, 1, true), {Type: TypeFault, Fault: FaultMachineStall, Start: at(5), End: at(7.6)},
			req("a", 0, 6, 0), req("a", 0, 30, 200)}, nil},
		{"unanswered after a machine stall's recovery", []Record{op(OpCreate, "a", 0, 1, true), {Type: TypeFault, Fault: FaultMachineStall, Start: at(5), End: at(7.6)},
			req("a", 0, 20, 0), req("a", 0, 30, 200)}, []string{KindValidRefused}},
		{"refused within the recovery after an etcd restart", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultEtcdRestart, 4, 6), req("a", 0, 15, 503)}, nil},
		{"refused after an etcd restart's recovery", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultEtcdRestart, 4, 6), req("a", 0, 17, 503), req("a", 0, 18, 200)}, []string{KindValidRefused}},
		{"budget overrun by what a killed replica could not flush while etcd was down", []Record{withBudget(op(OpCreate, "a", 0, 1, true), 100),
			tokens(req("a", 0, 2, 200), 60), fault(FaultEtcdRestart, 1, 5), fault(FaultGatewayKill, 6, 8), tokens(req("a", 0, 30, 200), 60)}, nil},
		// Rotations and policy changes are relayed between replicas as
		// revocations are: a replica cut off from the API server while one
		// is written gets no more time than the others.
		{"old secret refused by a replica cut off during the rotation", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultPartition, 9, 20),
			rotation(op(OpRotate, "a", 10, 11, true), 1, 15), onReplica(req("a", 0, 14, 200), "gw-1"), onReplica(req("a", 0, 16, 401), "gw-1")}, nil},
		{"old secret served by a replica cut off during the rotation, past its grace", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultPartition, 9, 20),
			rotation(op(OpRotate, "a", 10, 11, true), 1, 15), onReplica(req("a", 0, 18, 200), "gw-1"), onReplica(req("a", 0, 34, 401), "gw-1")}, []string{KindExpiredServed}},
		{"old secret served by a replica cut off during the rotation, after it recovered", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultPartition, 9, 20),
			rotation(op(OpRotate, "a", 10, 11, true), 1, 15), onReplica(req("a", 0, 36, 200), "gw-1")}, []string{KindExpiredServed}},
		{"old secret served by another replica than the one cut off", []Record{op(OpCreate, "a", 0, 1, true), fault(FaultPartition, 9, 20),
			rotation(op(OpRotate, "a", 10, 11, true), 1, 15), req("a", 0, 18, 200)}, []string{KindExpiredServed}},
		{"rate limit lowered while a replica was cut off, kept", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 3), fault(FaultPartition, 50, 58),
			withRPM(op(OpPolicy, "a", 52, 53, true), 2), req("a", 0, 61, 200), req("a", 0, 62, 200), req("a", 0, 63, 429)}, nil},
		{"rate limit lowered while a replica was cut off, overrun in the next minute", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 3), fault(FaultPartition, 50, 58),
			withRPM(op(OpPolicy, "a", 52, 53, true), 2), req("a", 0, 61, 200), req("a", 0, 62, 200), req("a", 0, 63, 200)}, []string{KindRateOverrun}},
		{"rate limit lowered, overrun after the cut-off replica recovered", []Record{withRPM(op(OpCreate, "a", 0, 1, true), 3), fault(FaultPartition, 20, 28),
			withRPM(op(OpPolicy, "a", 22, 23, true), 2), req("a", 0, 61, 200), req("a", 0, 62, 200), req("a", 0, 63, 200)}, []string{KindRateOverrun}},
		{"key lost after the faults", []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 3, 200), fault(FaultGatewayKill, 4, 6),
			req("a", 0, 20, 401), req("a", 0, 21, 401)}, []string{KindValidRefused, KindValidRefused, KindKeyLost}},
		{"key leaked", []Record{op(OpCreate, "a", 0, 1, true), {Type: TypeLeak, Key: "a", Start: at(50), End: at(50), Detail: "gw-0.log line 12"}}, []string{KindKeyLeaked}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep := Check(tc.history, bounds)
			got := kinds(rep)
			slices.Sort(got)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("violations %v, want %v:\n%v", got, want, rep.Violations)
			}
		})
	}
}

func TestReportSaysWhatBroke(t *testing.T) {
	rep := Check([]Record{op(OpCreate, "laptop", 0, 1, true), op(OpRevoke, "laptop", 10, 11, true), req("laptop", 0, 12, 200), fault(FaultGatewayKill, 20, 22)}, bounds)
	if got := rep.Summary(); got != "chaos: 1 requests, 1 faults, violations: 1" {
		t.Errorf("summary %q", got)
	}
	line := rep.Violations[0].String()
	for _, want := range []string{"retired-key-served", "key=laptop", "replica=gw-0", "12:00:12.000", "1s after `revoke` was confirmed"} {
		if !strings.Contains(line, want) {
			t.Errorf("violation line %q lacks %q", line, want)
		}
	}
	if rep.MustRefuse != 1 || rep.MustServe != 0 {
		t.Errorf("MustRefuse %d, MustServe %d; want 1 and 0", rep.MustRefuse, rep.MustServe)
	}
	if rep.LastServedAfterRetire != time.Second {
		t.Errorf("LastServedAfterRetire %v, want 1s", rep.LastServedAfterRetire)
	}
}

func TestHistoryRoundTrips(t *testing.T) {
	in := []Record{op(OpCreate, "a", 0, 1, true), req("a", 0, 5, 200), fault(FaultPartition, 6, 9)}
	var buf bytes.Buffer
	if err := WriteHistory(&buf, in); err != nil {
		t.Fatal(err)
	}
	out, err := ReadHistory(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) || !out[1].Start.Equal(in[1].Start) || out[2].Fault != FaultPartition {
		t.Errorf("read back %+v", out)
	}
}

func TestLeakScanFindsASecretAnywhereInARun(t *testing.T) {
	key := "cvk_AbCdEf12" + "0123456789abcdefghijABCDEFGHIJkl" + "Zz9Yy8"
	secrets := map[string]string{secretPart(key): "laptop"}
	for _, text := range []string{"token=" + key + " end", `{"msg":"x` + secretPart(key) + `"}`, "run" + secretPart(key) + "more62chars"} {
		if got := leaksIn([]byte(text), secrets); !got["laptop"] {
			t.Errorf("no leak found in %q", text)
		}
	}
	if got := leaksIn([]byte("cvk_AbCdEf12 and 0123456789abcdefghijABCDEFGHIJk"), secrets); len(got) != 0 {
		t.Errorf("a prefix and a shorter run reported as leaks: %v", got)
	}
}
