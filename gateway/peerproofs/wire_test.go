package peerproofs

import (
	"reflect"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/peerproofs/peerproofspb"
)

func sampleProofs() []auth.PeerProof {
	return []auth.PeerProof{
		{KeyID: "a1B2c3D4e5F6g7H8", Binding: auth.Binding{1, 2, 3}, Epoch: 81234, MAC: [32]byte{9, 8, 7}},
		{KeyID: "Z9y8X7w6V5u4T3s2", Binding: auth.Binding{15: 4}, Epoch: 81233, MAC: [32]byte{31: 1}},
	}
}

// marshal and unmarshal are what gRPC does to a batch between two peers.
func marshal(t testing.TB, proofs []auth.PeerProof) []byte {
	t.Helper()
	b, err := proto.Marshal(encode(proofs))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func unmarshal(b []byte) ([]auth.PeerProof, error) {
	var batch peerproofspb.ProofBatch
	if err := proto.Unmarshal(b, &batch); err != nil {
		return nil, err
	}
	return decode(&batch)
}

func TestWireRoundTrip(t *testing.T) {
	in := sampleProofs()
	out, err := unmarshal(marshal(t, in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if out, err := unmarshal(marshal(t, nil)); err != nil || len(out) != 0 {
		t.Errorf("empty batch: %v, %v", out, err)
	}
	long := append(sampleProofs(), auth.PeerProof{KeyID: strings.Repeat("k", maxKeyID+1)})
	if out, err := unmarshal(marshal(t, long)); err != nil || !reflect.DeepEqual(out, in) {
		t.Errorf("a proof with a key ID over %d bytes was not left out: %+v, %v", maxKeyID, out, err)
	}
}

// A batch with one malformed proof is refused whole: its sender is of
// another release or broken, and the keys are verified here instead.
func TestWireRefusesMalformedProofs(t *testing.T) {
	for name, mutate := range map[string]func(*peerproofspb.Proof){
		"no key ID":       func(p *peerproofspb.Proof) { p.KeyId = "" },
		"key ID too long": func(p *peerproofspb.Proof) { p.KeyId = strings.Repeat("k", maxKeyID+1) },
		"short binding":   func(p *peerproofspb.Proof) { p.Binding = p.Binding[:15] },
		"long binding":    func(p *peerproofspb.Proof) { p.Binding = append(p.Binding, 0) },
		"no binding":      func(p *peerproofspb.Proof) { p.Binding = nil },
		"short MAC":       func(p *peerproofspb.Proof) { p.Mac = p.Mac[:31] },
		"no MAC":          func(p *peerproofspb.Proof) { p.Mac = nil },
		"long MAC":        func(p *peerproofspb.Proof) { p.Mac = make([]byte, 64) },
	} {
		batch := encode(sampleProofs())
		mutate(batch.Proofs[1])
		if out, err := decode(batch); err == nil {
			t.Errorf("%s: decoded %+v", name, out)
		}
	}
	big := &peerproofspb.ProofBatch{Proofs: make([]*peerproofspb.Proof, maxBatch+1)}
	if _, err := decode(big); err == nil {
		t.Errorf("a batch of %d proofs decoded", maxBatch+1)
	}
	b := marshal(t, sampleProofs())
	for _, n := range []int{1, 20, len(b) - 1} {
		if out, err := unmarshal(b[:n]); err == nil {
			t.Errorf("a batch cut to %d of %d bytes decoded: %+v", n, len(b), out)
		}
	}
}

// FuzzDecode: whatever a peer sends, decode returns proofs or an error and
// never panics, and what it returns crosses the wire again unchanged.
func FuzzDecode(f *testing.F) {
	f.Add(marshal(f, sampleProofs()))
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		proofs, err := unmarshal(b)
		if err != nil {
			return
		}
		again, err := unmarshal(marshal(t, proofs))
		if err != nil {
			t.Fatalf("re-encoded proofs do not decode: %v", err)
		}
		if !reflect.DeepEqual(proofs, again) && len(proofs)+len(again) > 0 {
			t.Errorf("decode, encode, decode changed the proofs:\n%+v\n%+v", proofs, again)
		}
	})
}
