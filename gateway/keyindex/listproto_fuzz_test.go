package keyindex

import (
	"bufio"
	"bytes"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
)

// FuzzDecodeProtobufListFacts: whatever the API server (or something in
// its place) sends, the decoder returns an error or a list, never panics,
// and never returns more items than the bytes could hold (an item is at
// least a tag and a length, two bytes).
func FuzzDecodeProtobufListFacts(f *testing.F) {
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	serializer := protobuf.NewSerializer(scheme, scheme)
	encode := func(list *corev1.SecretList) []byte {
		var buf bytes.Buffer
		if err := serializer.Encode(list, &buf); err != nil {
			f.Fatal(err)
		}
		return buf.Bytes()
	}
	// Seeds as the API server sends them: "k8s\x00" and a runtime.Unknown
	// holding the SecretList.
	one := &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: "77"}}
	one.Items = append(one.Items, *hashSecret("secret-0", "ABCDEFGH", "uid-0"))
	f.Add(encode(one))
	two := one.DeepCopy()
	two.Items = append(two.Items, *hashSecret("secret-1", "ZZZZZZZZ", "uid-1"))
	notAHash := hashSecret("secret-x", "YYYYYYYY", "uid-x")
	notAHash.Type = corev1.SecretTypeOpaque
	two.Items = append(two.Items, *notAHash)
	f.Add(encode(two))
	f.Add(encode(&corev1.SecretList{}))
	f.Add(append([]byte(nil), protobufMagic...))

	keepAll := func(o runtime.Object) (any, bool) { return o, true }
	f.Fuzz(func(t *testing.T, data []byte) {
		for name, reduce := range map[string]func(runtime.Object) (any, bool){"hash Secrets": reduceHashSecret, "every item": keepAll} {
			out, err := decodeProtobufListFacts(bufio.NewReader(bytes.NewReader(data)), func() runtime.Object { return &corev1.Secret{} }, reduce)
			if err != nil {
				continue
			}
			if most := max(len(data)-len(protobufMagic), 0) / 2; len(out.Items) > most {
				t.Fatalf("%s: %d items from %d bytes (at most %d)", name, len(out.Items), len(data), most)
			}
		}
	})
}
