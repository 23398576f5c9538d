package peerproofs

import (
	"fmt"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/peerproofs/peerproofspb"
)

// The wire form of a batch of proofs is the generated ProofBatch
// (proto/codevector/gateway/v1/proofs.proto); encode and decode map it to
// auth.PeerProof, whose binding and MAC are fixed-size arrays.

// maxBatch is how many proofs one message carries (76 bytes each with a
// 16-character key ID: 610 KiB, well under gRPC's 4 MiB message limit).
const maxBatch = 8192

// maxKeyID bounds a key ID on the wire; no key ID is this long.
const maxKeyID = 255

// encode maps proofs to a batch.
func encode(proofs []auth.PeerProof) *peerproofspb.ProofBatch {
	// One allocation for all the messages, one for the pointers.
	msgs := make([]peerproofspb.Proof, len(proofs))
	out := &peerproofspb.ProofBatch{Proofs: make([]*peerproofspb.Proof, 0, len(proofs))}
	for i := range proofs {
		p := &proofs[i]
		if len(p.KeyID) > maxKeyID {
			continue
		}
		m := &msgs[i]
		m.KeyId, m.Binding, m.Epoch, m.Mac = p.KeyID, p.Binding[:], p.Epoch, p.MAC[:]
		out.Proofs = append(out.Proofs, m)
	}
	return out
}

// decode maps a batch a peer sent to proofs. It refuses the whole batch
// if any proof is malformed (a peer of another release, or a bug): the
// keys are then verified here.
func decode(b *peerproofspb.ProofBatch) ([]auth.PeerProof, error) {
	if len(b.GetProofs()) > maxBatch {
		return nil, fmt.Errorf("proof batch of %d proofs, more than %d", len(b.Proofs), maxBatch)
	}
	out := make([]auth.PeerProof, len(b.GetProofs()))
	for i, m := range b.GetProofs() {
		p := &out[i]
		switch {
		case m.GetKeyId() == "" || len(m.GetKeyId()) > maxKeyID:
			return nil, fmt.Errorf("proof %d: key ID of %d bytes", i, len(m.GetKeyId()))
		case len(m.GetBinding()) != len(p.Binding):
			return nil, fmt.Errorf("proof %d: binding of %d bytes, want %d", i, len(m.GetBinding()), len(p.Binding))
		case len(m.GetMac()) != len(p.MAC):
			return nil, fmt.Errorf("proof %d: MAC of %d bytes, want %d", i, len(m.GetMac()), len(p.MAC))
		}
		p.KeyID, p.Epoch = m.KeyId, m.Epoch
		copy(p.Binding[:], m.Binding)
		copy(p.MAC[:], m.Mac)
	}
	return out, nil
}
