package keyindex

import (
	"bufio"
	"bytes"
	"encoding/binary"
	goruntime "runtime"
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

// A list that claims a gigabyte in a few bytes is refused without
// allocating the gigabyte (the fuzzer's slowest inputs did).
func TestProtobufListClaimingAGigabyte(t *testing.T) {
	b := append([]byte(nil), protobufMagic...)
	b = append(b, 0x12) // field 2 (the list), length-delimited
	b = binary.AppendUvarint(b, 1<<30)
	b = append(b, 0x0a) // field 1 (its metadata), length-delimited
	b = binary.AppendUvarint(b, 1<<30-10)
	var before, after goruntime.MemStats
	goruntime.ReadMemStats(&before)
	_, err := decodeProtobufListFacts(bufio.NewReader(bytes.NewReader(b)), func() runtime.Object { return &corev1.Secret{} }, reduceHashSecret)
	goruntime.ReadMemStats(&after)
	if err == nil {
		t.Error("a truncated list was accepted")
	}
	if mib := (after.TotalAlloc - before.TotalAlloc) >> 20; mib > 64 {
		t.Errorf("decoding %d bytes allocated %d MiB", len(b), mib)
	}
}

func TestReadNAcrossChunks(t *testing.T) {
	want := bytes.Repeat([]byte("0123456789abcdef"), (3*readChunk+5)/16+1)[:3*readChunk+5]
	var buf []byte
	got, err := readN(bufio.NewReader(bytes.NewReader(want)), len(want), &buf)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("readN of %d bytes: %d bytes back, err %v", len(want), len(got), err)
	}
	if _, err := readN(bufio.NewReader(bytes.NewReader(want[:len(want)-1])), len(want), &buf); err == nil {
		t.Error("readN of a byte short: no error")
	}
}
