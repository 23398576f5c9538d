package relay

import (
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/relay/relaypb"
)

func TestEncodeDecode(t *testing.T) {
	in := []keyindex.Revocation{
		{Name: types.NamespacedName{Namespace: "team", Name: "laptop"}, UID: "uid-1", ResourceVersion: 1 << 40, Reason: keyindex.RevocationRevoked},
		{Name: types.NamespacedName{Namespace: "team", Name: "ci"}, UID: "uid-2", ResourceVersion: 7, Reason: keyindex.RevocationDeleted},
	}
	// Through the wire, as gRPC's codec sends it.
	change := keyindex.RelayedAPIKey(&gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "rotated", UID: "uid-3", ResourceVersion: "42",
			Labels: map[string]string{"left": "out"}},
		Spec:   gatewayv1alpha1.APIKeySpec{Owner: "alice", Models: []gatewayv1alpha1.ModelGlob{"gpt-4o*"}},
		Status: gatewayv1alpha1.APIKeyStatus{Prefix: "cvk_abcdefgh"},
	})
	b, err := proto.Marshal(Encode(Batch{Revocations: in, Changes: []*gatewayv1alpha1.APIKey{change}}, true))
	if err != nil {
		t.Fatal(err)
	}
	msg := new(relaypb.RelayRequest)
	if err := proto.Unmarshal(b, msg); err != nil {
		t.Fatal(err)
	}
	out, current, err := Decode(msg)
	if err != nil || !current || len(out.Revocations) != 2 || out.Revocations[0] != in[0] || out.Revocations[1] != in[1] {
		t.Fatalf("Decode = %+v, %v, %v; want %+v, true", out, current, err, in)
	}
	if len(out.Changes) != 1 || !equality.Semantic.DeepEqual(out.Changes[0], change) || out.Changes[0].Labels != nil {
		t.Fatalf("changes = %+v; want %+v, without labels", out.Changes, change)
	}
	if f := keyindex.APIKeyFactsOf(out.Changes[0]); f.ResourceVersion != 42 || f.KeyID != "abcdefgh" || f.Policy == nil || f.Policy.Models[0] != "gpt-4o*" {
		t.Errorf("the index reads %+v from the relayed change", f)
	}
	if out, current, err := Decode(Encode(Batch{}, false)); err != nil || current || len(out.Revocations)+len(out.Changes) != 0 {
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
		msg := Encode(Batch{Revocations: []keyindex.Revocation{good, good}}, true)
		mutate(msg.Revocations[1])
		if out, _, err := Decode(msg); err == nil {
			t.Errorf("%s: decoded %+v", name, out)
		}
	}
	big := make([]keyindex.Revocation, maxBatch+1)
	for i := range big {
		big[i] = good
	}
	if _, _, err := Decode(Encode(Batch{Revocations: big}, true)); err == nil {
		t.Error("a batch over maxBatch was decoded")
	}

	change := func(json string) *relaypb.Change { return &relaypb.Change{ApiKey: []byte(json)} }
	ok := `{"metadata":{"namespace":"team","name":"laptop","uid":"uid-1","resourceVersion":"9"}}`
	for name, c := range map[string]*relaypb.Change{
		"not JSON":           change(`{"metadata":`),
		"no uid":             change(`{"metadata":{"namespace":"team","name":"laptop","resourceVersion":"9"}}`),
		"no resourceVersion": change(`{"metadata":{"namespace":"team","name":"laptop","uid":"uid-1"}}`),
		"no namespace":       change(`{"metadata":{"name":"laptop","uid":"uid-1","resourceVersion":"9"}}`),
		"too large":          change(ok[:len(ok)-1] + `,"spec":{"displayName":"` + strings.Repeat("x", maxChangeBytes) + `"}}`),
	} {
		msg := &relaypb.RelayRequest{Revocations: []*relaypb.Revocation{Encode(Batch{Revocations: []keyindex.Revocation{good}}, true).Revocations[0]},
			Changes: []*relaypb.Change{change(ok), c}}
		if out, _, err := Decode(msg); err == nil {
			t.Errorf("%s: decoded %+v", name, out)
		}
	}
	if _, _, err := Decode(&relaypb.RelayRequest{Changes: []*relaypb.Change{change(ok)}}); err != nil {
		t.Errorf("a well-formed change: %v", err)
	}
	many := &relaypb.RelayRequest{}
	for range maxChanges + 1 {
		many.Changes = append(many.Changes, change(ok))
	}
	if _, _, err := Decode(many); err == nil {
		t.Error("a batch over maxChanges was decoded")
	}
}

// Changes queue apart from revocations: a burst of them (an admin's change
// of thousands of keys) is dropped past the queue's bound, and a
// revocation still waits for the peers; a message gathers revocations
// first, within both bounds.
func TestChangesNeverCrowdOutRevocations(t *testing.T) {
	r := New(Config{Index: keyindex.New(nil), Registerer: prometheus.NewRegistry()})
	for i := range queueSize + 10 {
		r.publishChange(keyindex.RelayedAPIKey(&gatewayv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "k", UID: "uid-1", ResourceVersion: strconv.Itoa(i + 1)}}))
	}
	for i := range 3 {
		r.publish(keyindex.Revocation{Name: types.NamespacedName{Namespace: "team", Name: "k"}, UID: types.UID("uid-r" + strconv.Itoa(i)), ResourceVersion: 9, Reason: keyindex.RevocationRevoked})
	}
	if n := testutil.ToFloat64(r.failures.WithLabelValues("dropped")); n != 10 {
		t.Errorf("dropped %v, want the 10 changes past the queue", n)
	}
	b := r.gather(<-r.changeQueue)
	if len(b.revs) != 3 || len(b.changes) != maxChanges {
		t.Errorf("a message of %d revocations and %d changes, want all 3 and %d", len(b.revs), len(b.changes), maxChanges)
	}
}
