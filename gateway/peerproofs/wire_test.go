package peerproofs

import (
	"reflect"
	"testing"

	"github.com/codevector/codevector/gateway/auth"
)

func sampleProofs() []auth.PeerProof {
	return []auth.PeerProof{
		{KeyID: "a1B2c3D4e5F6g7H8", Binding: auth.Binding{1, 2, 3}, Epoch: 81234, MAC: [32]byte{9, 8, 7}},
		{KeyID: "Z9y8X7w6V5u4T3s2", Binding: auth.Binding{15: 4}, Epoch: 81233, MAC: [32]byte{31: 1}},
	}
}

func TestWireRoundTrip(t *testing.T) {
	in := sampleProofs()
	out, err := decode(encode(in))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip:\n got %+v\nwant %+v", out, in)
	}
	if out, err := decode(encode(nil)); err != nil || len(out) != 0 {
		t.Errorf("empty batch: %v, %v", out, err)
	}
}

func TestWireRefusesTruncatedAndForeignBatches(t *testing.T) {
	b := encode(sampleProofs())
	for _, n := range []int{0, 1, 2, 20, len(b) - 1} {
		if _, err := decode(b[:n]); err == nil && n != 1 {
			t.Errorf("a batch cut to %d of %d bytes decoded", n, len(b))
		}
	}
	b[0] = 2
	if _, err := decode(b); err == nil {
		t.Error("a batch of wire version 2 decoded")
	}
}

// FuzzDecode: whatever a peer sends, decode returns proofs or an error and
// never panics, and what it returns encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(encode(sampleProofs()))
	f.Add([]byte{wireVersion, 3, 'a'})
	f.Fuzz(func(t *testing.T, b []byte) {
		proofs, err := decode(b)
		if err != nil {
			return
		}
		if again := encode(proofs); string(again) != string(b) {
			t.Errorf("decode then encode changed the batch:\n%x\n%x", b, again)
		}
	})
}
