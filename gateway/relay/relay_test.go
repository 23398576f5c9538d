package relay

import (
	"testing"

	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/types"

	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/relay/relaypb"
)

func TestEncodeDecode(t *testing.T) {
	in := []keyindex.Revocation{
		{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", ResourceVersion: 1 << 40, Reason: keyindex.RevocationRevoked},
		{Name: types.NamespacedName{Namespace: "team", Name: "ci"}, UID: "uid-2", ResourceVersion: 7, Reason: keyindex.RevocationDeleted},
	}
	// Through the wire, as gRPC's codec sends it.
	b, err := proto.Marshal(Encode(in, true))
	if err != nil {
		t.Fatal(err)
	}
	msg := new(relaypb.RelayRequest)
	if err := proto.Unmarshal(b, msg); err != nil {
		t.Fatal(err)
	}
	out, current, err := Decode(msg)
	if err != nil || !current || len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("Decode = %+v, %v, %v; want %+v, true", out, current, err, in)
	}
	if out, current, err := Decode(Encode(nil, false)); err != nil || current || len(out) != 0 {
		t.Errorf("a heartbeat of a replica that is not current: %+v %v %v", out, current, err)
	}
}

// A message with any revocation that cannot be read is refused whole.
func TestDecodeRefusesMalformed(t *testing.T) {
	good := keyindex.Revocation{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", ResourceVersion: 3, Reason: keyindex.RevocationRevoked}
	for name, mutate := range map[string]func(*relaypb.Revocation){
		"no uid":         func(r *relaypb.Revocation) { r.Uid = "" },
		"no name":        func(r *relaypb.Revocation) { r.Name = "" },
		"no namespace":   func(r *relaypb.Revocation) { r.Namespace = "" },
		"no reason":      func(r *relaypb.Revocation) { r.Reason = relaypb.Reason_REASON_UNSPECIFIED },
		"unknown reason": func(r *relaypb.Revocation) { r.Reason = 7 },
	} {
		msg := Encode([]keyindex.Revocation{good, good}, true)
		mutate(msg.Revocations[1])
		if out, _, err := Decode(msg); err == nil {
			t.Errorf("%s: decoded %+v", name, out)
		}
	}
	big := make([]keyindex.Revocation, maxBatch+1)
	for i := range big {
		big[i] = good
	}
	if _, _, err := Decode(Encode(big, true)); err == nil {
		t.Error("a batch over maxBatch was decoded")
	}
}
