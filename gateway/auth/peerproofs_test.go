package auth

import (
	"context"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys"
)

// peerReplica is one replica's index and Authenticator, wired as the
// gateway wires them, sharing proofs under root.
type peerReplica struct {
	a  *Authenticator
	ix *keyindex.Index
}

func newPeerReplica(t *testing.T, clk *testingclock.FakeClock, root string, facts keyindex.APIKeyFacts, k keys.Key, phc keys.PHC) *peerReplica {
	t.Helper()
	r := &peerReplica{}
	r.ix = keyindex.New(nil)
	r.a = New(r.ix, Options{Clock: clk})
	r.ix.SetAPIKey(facts)
	r.ix.SetHash(keyindex.HashFacts{SecretUID: "hash-1", KeyID: k.ID(), APIKeyUID: facts.UID, Hash: phc})
	if root != "" {
		r.a.PeerProofs().Enable([]byte(root), nil)
	}
	return r
}

func peerProofHits(a *Authenticator) float64 {
	var m dto.Metric
	_ = a.metrics.peerProofHits.Write(&m)
	return m.GetCounter().GetValue()
}

// hashOf is k's argon2id hash, at the cheapest parameters.
func hashOf(t testing.TB, k keys.Key) keys.PHC {
	t.Helper()
	s, err := keys.Hash(k, fastParams)
	if err != nil {
		t.Fatal(err)
	}
	phc, err := keys.ParsePHC(s)
	if err != nil {
		t.Fatal(err)
	}
	return phc
}

func activeFacts(k keys.Key) keyindex.APIKeyFacts {
	return keyindex.APIKeyFacts{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", KeyID: k.ID(),
		Prefix: k.DisplayPrefix(), Owner: "alice", Phase: gatewayv1alpha1.PhaseActive}
}

// A replica that learned another's proof serves the key without argon2;
// one with no proofs, or sharing off, runs argon2 as before.
func TestLearnedProofSkipsArgon2(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	k, _ := keys.Generate()
	phc := hashOf(t, k)
	old := newPeerReplica(t, clk, "shared root", activeFacts(k), k, phc)
	fresh := newPeerReplica(t, clk, "shared root", activeFacts(k), k, phc)
	alone := newPeerReplica(t, clk, "", activeFacts(k), k, phc)
	ctx := context.Background()

	if _, f := old.a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
		t.Fatalf("refused: %+v", f)
	}
	if n := fresh.a.PeerProofs().Import(old.a.PeerProofs().Export(clk.Now()), clk.Now()); n != 1 {
		t.Fatalf("imported %d proofs, want 1", n)
	}
	for range 3 {
		if _, f := fresh.a.Authenticate(ctx, k.Reveal(), "10.0.0.1"); f != nil {
			t.Fatalf("refused with a learned proof: %+v", f)
		}
	}
	if runs, hits := argon2Runs(fresh.a), peerProofHits(fresh.a); runs != 0 || hits != 1 {
		t.Errorf("with a learned proof: %v argon2 runs and %v proof hits for 3 requests, want 0 and 1", runs, hits)
	}
	if n := alone.a.PeerProofs().Import(old.a.PeerProofs().Export(clk.Now()), clk.Now()); n != 0 {
		t.Errorf("a replica without sharing imported %d proofs", n)
	}
	alone.a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	if runs := argon2Runs(alone.a); runs != 1 {
		t.Errorf("without sharing: %v argon2 runs, want 1", runs)
	}
}

// A proof binds the key's secret, key ID, APIKey incarnation, hash Secret,
// hash and rotation state, under the replicas' shared root and a current
// epoch: change any one and it proves nothing.
func TestProofBindsKeyIncarnationHashAndSecret(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	k, _ := keys.Generate()
	other, _ := keys.Generate()
	wrongSecret, err := keys.WithID(other, k.ID())
	if err != nil {
		t.Fatal(err)
	}
	phc := hashOf(t, k)
	maker := newPeerReplica(t, clk, "shared root", activeFacts(k), k, phc)
	e := maker.ix.Lookup(k.ID())
	maker.a.PeerProofs().record(e, k.Reveal(), clk.Now())
	proof := maker.a.PeerProofs().Export(clk.Now())[0]

	cases := []struct {
		name  string
		root  string
		raw   string
		entry func(e keyindex.Entry) *keyindex.Entry
		proof func(p PeerProof) PeerProof
		after time.Duration
	}{
		{name: "the key itself", raw: k.Reveal()},
		{name: "another secret under the key ID", raw: wrongSecret.Reveal()},
		{name: "another APIKey with the key ID", raw: k.Reveal(),
			entry: func(e keyindex.Entry) *keyindex.Entry {
				f := *e.APIKeyFacts
				f.UID = "uid-2"
				e.APIKeyFacts = &f
				return &e
			}},
		{name: "another hash Secret", raw: k.Reveal(), entry: func(e keyindex.Entry) *keyindex.Entry { e.HashUID = "hash-2"; return &e }},
		{name: "a new hash of the same key", raw: k.Reveal(), entry: func(e keyindex.Entry) *keyindex.Entry { h := hashOf(t, k); e.Hash = &h; return &e }},
		{name: "the key rotated out", raw: k.Reveal(), entry: func(e keyindex.Entry) *keyindex.Entry { e.Previous = true; return &e }},
		{name: "a proof claiming the new state", raw: k.Reveal(),
			entry: func(e keyindex.Entry) *keyindex.Entry { e.HashUID = "hash-2"; return &e },
			proof: func(p PeerProof) PeerProof { e2 := *e; e2.HashUID = "hash-2"; p.Binding = BindingOf(&e2); return p }},
		{name: "a forged MAC", raw: k.Reveal(), proof: func(p PeerProof) PeerProof { p.MAC[0] ^= 1; return p }},
		{name: "a foreign root", root: "another cluster's root", raw: k.Reveal()},
		{name: "three epochs later", raw: k.Reveal(), after: 3 * ProofEpoch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := c.root
			if root == "" {
				root = "shared root"
			}
			table := newPeerProofs(10)
			table.Enable([]byte(root), nil)
			p := proof
			if c.proof != nil {
				p = c.proof(p)
			}
			now := clk.Now().Add(c.after)
			table.put(p)
			entry := e
			if c.entry != nil {
				entry = c.entry(*e)
			}
			got := table.check(entry, c.raw, now) != 0
			if want := c.name == "the key itself"; got != want {
				t.Errorf("proof accepted = %v, want %v", got, want)
			}
		})
	}
}

// A learned proof is dropped on the replica that holds it as soon as its
// watch says the key is revoked, rotated, deleted or rehashed; a change
// that does not touch authentication (a policy edit) keeps it.
func TestProofDroppedWhenKeyChanges(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	k, _ := keys.Generate()
	phc := hashOf(t, k)
	changes := map[string]func(r *peerReplica, f keyindex.APIKeyFacts){
		"revoked": func(r *peerReplica, f keyindex.APIKeyFacts) { f.Revoked = true; r.ix.SetAPIKey(f) },
		"rotated": func(r *peerReplica, f keyindex.APIKeyFacts) {
			next, _ := keys.Generate()
			f.PreviousKeyID, f.PreviousExpiresAt = f.KeyID, clk.Now().Add(time.Hour)
			f.KeyID, f.Prefix = next.ID(), next.DisplayPrefix()
			r.ix.SetAPIKey(f)
		},
		"deleted": func(r *peerReplica, f keyindex.APIKeyFacts) {
			r.ix.DeleteAPIKey(f.Name)
			r.ix.DeleteHash("hash-1")
		},
		"rehashed": func(r *peerReplica, f keyindex.APIKeyFacts) {
			r.ix.SetHash(keyindex.HashFacts{SecretUID: "hash-1", KeyID: k.ID(), APIKeyUID: f.UID, Hash: hashOf(t, k)})
		},
		"given limits (kept)": func(r *peerReplica, f keyindex.APIKeyFacts) {
			f.Policy = &keyindex.Policy{Models: []string{"gpt-4o*"}}
			r.ix.SetAPIKey(f)
		},
	}
	maker := newPeerReplica(t, clk, "shared root", activeFacts(k), k, phc)
	maker.a.Authenticate(context.Background(), k.Reveal(), "10.0.0.1")
	for name, change := range changes {
		t.Run(name, func(t *testing.T) {
			r := newPeerReplica(t, clk, "shared root", activeFacts(k), k, phc)
			r.a.PeerProofs().Import(maker.a.PeerProofs().Export(clk.Now()), clk.Now())
			change(r, activeFacts(k))
			if got, want := r.a.PeerProofs().Has(k.ID()), name == "given limits (kept)"; got != want {
				t.Errorf("proof held after the change = %v, want %v", got, want)
			}
		})
	}
}

// Proof keys rotate every epoch: a key in use gets a proof of the new
// epoch on its first request in it (one HMAC, no argon2), which is passed
// on, so peers keep skipping argon2 for it; an unused key's proof ages out.
func TestProofRenewedEachEpochWhileInUse(t *testing.T) {
	clk := testingclock.NewFakeClock(time.Now())
	k, _ := keys.Generate()
	r := newPeerReplica(t, clk, "", activeFacts(k), k, hashOf(t, k))
	var published []PeerProof
	r.a.PeerProofs().Enable([]byte("shared root"), func(p PeerProof) { published = append(published, p) })
	ctx := context.Background()
	r.a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	r.a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	clk.Step(ProofEpoch)
	r.a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	r.a.Authenticate(ctx, k.Reveal(), "10.0.0.1")
	if len(published) != 2 || published[1].Epoch != published[0].Epoch+1 {
		t.Fatalf("published %+v over two epochs of use, want one proof per epoch", published)
	}
	if runs := argon2Runs(r.a); runs != 1 {
		t.Errorf("argon2 ran %v times, want 1", runs)
	}
	if got := r.a.PeerProofs().Export(clk.Now().Add(ProofEpoch)); len(got) != 1 {
		t.Errorf("in the next epoch the proof is not exported (%d)", len(got))
	}
	if got := r.a.PeerProofs().Export(clk.Now().Add(2 * ProofEpoch)); len(got) != 0 {
		t.Errorf("two epochs later the unused key's proof is still exported")
	}
}
