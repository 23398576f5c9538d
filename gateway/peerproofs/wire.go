package peerproofs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/codevector/codevector/gateway/auth"
)

// The wire format of a batch of proofs. It is hand-written rather than
// generated from a .proto file: a proof is four fixed fields, and a codec
// of forty lines (fuzzed by FuzzDecode) costs less than a protoc step in
// the build. A batch is a version byte, then per proof:
//
//	u8 len | key ID | 16-byte binding | i64 epoch, big endian | 32-byte MAC
const wireVersion = 1

// maxBatch is how many proofs one message carries (73 bytes each with a
// 16-character key ID: 600 KiB, well under gRPC's 4 MiB message limit).
const maxBatch = 8192

var errTruncated = errors.New("truncated proof batch")

// encode appends proofs to a new batch.
func encode(proofs []auth.PeerProof) []byte {
	b := make([]byte, 1, 1+len(proofs)*73)
	b[0] = wireVersion
	for i := range proofs {
		p := &proofs[i]
		if len(p.KeyID) > 255 {
			continue // no key ID is this long
		}
		b = append(append(b, byte(len(p.KeyID))), p.KeyID...)
		b = append(b, p.Binding[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Epoch))
		b = append(b, p.MAC[:]...)
	}
	return b
}

// decode reads a batch. It never panics on malformed input.
func decode(b []byte) ([]auth.PeerProof, error) {
	if len(b) == 0 || b[0] != wireVersion {
		return nil, fmt.Errorf("unknown proof batch version (peers of another release?)")
	}
	b = b[1:]
	var out []auth.PeerProof
	const fixed = len(auth.Binding{}) + 8 + len(auth.PeerProof{}.MAC)
	for len(b) > 0 {
		var p auth.PeerProof
		n := int(b[0])
		if len(b) < 1+n+fixed {
			return nil, errTruncated
		}
		p.KeyID = string(b[1 : 1+n])
		b = b[1+n:]
		b = b[copy(p.Binding[:], b):]
		p.Epoch = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		b = b[copy(p.MAC[:], b):]
		out = append(out, p)
	}
	return out, nil
}
