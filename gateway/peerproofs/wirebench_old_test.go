package peerproofs

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/codevector/codevector/gateway/auth"
)

func marshalBatch(b *testing.B, proofs []auth.PeerProof) []byte {
	m, err := proto.Marshal(wrapperspb.Bytes(encode(proofs)))
	if err != nil {
		b.Fatal(err)
	}
	return m
}

func unmarshalBatch(b *testing.B, msg []byte) []auth.PeerProof {
	var v wrapperspb.BytesValue
	if err := proto.Unmarshal(msg, &v); err != nil {
		b.Fatal(err)
	}
	p, err := decode(v.Value)
	if err != nil {
		b.Fatal(err)
	}
	return p
}
