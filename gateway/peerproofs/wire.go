package peerproofs

import (
	"encoding/binary"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	"github.com/codevector/codevector/gateway/auth"
)

// The wire format of a batch of proofs. It is hand-written rather than
// generated from a .proto file: a proof is six fixed fields, and a codec of
// forty lines (fuzzed by FuzzDecode) costs less than a protoc step in the
// build. A batch is a version byte, then per proof:
//
//	u8 len | key ID | u8 len | APIKey UID | u8 len | hash Secret UID |
//	u8 flags (bit 0: previous key) | 16-byte hash sum |
//	i64 epoch, big endian | 32-byte MAC
const wireVersion = 1

// maxBatch is how many proofs one message carries (about 150 bytes each,
// well under gRPC's 4 MiB message limit).
const maxBatch = 8192

var errTruncated = errors.New("truncated proof batch")

// encode appends proofs to a new batch.
func encode(proofs []auth.PeerProof) []byte {
	b := make([]byte, 1, 1+len(proofs)*150)
	b[0] = wireVersion
	for i := range proofs {
		p := &proofs[i]
		b = appendField(b, p.KeyID)
		b = appendField(b, string(p.UID))
		b = appendField(b, string(p.HashUID))
		var flags byte
		if p.Previous {
			flags = 1
		}
		b = append(b, flags)
		b = append(b, p.HashSum[:]...)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Epoch))
		b = append(b, p.MAC[:]...)
	}
	return b
}

func appendField(b []byte, s string) []byte {
	if len(s) > 255 {
		s = "" // no key ID or UID is this long; an empty one is dropped on import
	}
	return append(append(b, byte(len(s))), s...)
}

// decode reads a batch. It never panics on malformed input.
func decode(b []byte) ([]auth.PeerProof, error) {
	if len(b) == 0 || b[0] != wireVersion {
		return nil, fmt.Errorf("unknown proof batch version (peers of another release?)")
	}
	b = b[1:]
	var out []auth.PeerProof
	for len(b) > 0 {
		var p auth.PeerProof
		var uid, hashUID string
		var ok bool
		if p.KeyID, b, ok = readField(b); !ok {
			return nil, errTruncated
		}
		if uid, b, ok = readField(b); !ok {
			return nil, errTruncated
		}
		if hashUID, b, ok = readField(b); !ok {
			return nil, errTruncated
		}
		const fixed = 1 + len(auth.HashSum{}) + 8 + len(auth.PeerProof{}.MAC)
		if len(b) < fixed {
			return nil, errTruncated
		}
		if b[0] > 1 {
			return nil, fmt.Errorf("unknown proof flags %#x", b[0])
		}
		p.UID, p.HashUID = types.UID(uid), types.UID(hashUID)
		p.Previous = b[0] == 1
		b = b[1:]
		b = b[copy(p.HashSum[:], b):]
		p.Epoch = int64(binary.BigEndian.Uint64(b))
		b = b[8:]
		b = b[copy(p.MAC[:], b):]
		out = append(out, p)
	}
	return out, nil
}

func readField(b []byte) (string, []byte, bool) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, false
	}
	n := int(b[0])
	return string(b[1 : 1+n]), b[1+n:], true
}
