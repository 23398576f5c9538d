package keyindex

import (
	"bufio"
	"bytes"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// issuedOnly keeps the facts of issued keys only.
func issuedOnly(o runtime.Object) (any, bool) {
	f := APIKeyFactsOf(o.(*gatewayv1alpha1.APIKey))
	return &f, f.KeyID != ""
}

func newAPIKey() runtime.Object { return &gatewayv1alpha1.APIKey{} }

func TestDecodeListFactsStreamsItems(t *testing.T) {
	body := `{"kind":"APIKeyList","apiVersion":"codevector.io/v1alpha1","metadata":{"resourceVersion":"42","continue":""},"items":[
		{"metadata":{"name":"laptop","namespace":"team","uid":"u1"},"spec":{"owner":"alice","displayName":"Laptop"},"status":{"phase":"Active","prefix":"cvk_ABCDEFGH"}},
		{"metadata":{"name":"pending","namespace":"team","uid":"u2"},"spec":{"owner":"alice"}}
	],"extra":{"ignored":[1,2]}}`
	list, err := decodeListFacts(strings.NewReader(body), newAPIKey, issuedOnly)
	if err != nil {
		t.Fatal(err)
	}
	if list.ResourceVersion != "42" {
		t.Errorf("resourceVersion %q, want 42 (the watch resumes from it)", list.ResourceVersion)
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d items kept, want 1 (the reduce function drops the pending key)", len(list.Items))
	}
	f := list.Items[0].(*listedFacts).facts.(*APIKeyFacts)
	if f.Name.Name != "laptop" || f.KeyID != "ABCDEFGH" || f.Owner != "alice" || f.DisplayName != "Laptop" || f.Phase != gatewayv1alpha1.PhaseActive {
		t.Errorf("facts %+v", f)
	}
}

func TestDecodeListFactsRefusesBrokenLists(t *testing.T) {
	for name, body := range map[string]string{
		"truncated":       `{"metadata":{"resourceVersion":"1"},"items":[{"metadata":{"name":"a"}}`,
		"not an object":   `[1,2,3]`,
		"items not array": `{"items":{"a":1}}`,
		"bad item":        `{"items":[{"metadata":"nope"}]}`,
		"empty":           ``,
	} {
		if _, err := decodeListFacts(strings.NewReader(body), newAPIKey, issuedOnly); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "reading list") {
			t.Errorf("%s: error %q does not say it was reading a list", name, err)
		}
	}
}

// The Secrets' list arrives in protobuf: encoded here by the API
// machinery's own serializer, it decodes item by item to the same facts.
func TestDecodeProtobufListFacts(t *testing.T) {
	list := &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: "77"}}
	for i, id := range []string{"ABCDEFGH", "ZZZZZZZZ"} {
		list.Items = append(list.Items, *hashSecret(fmt.Sprintf("secret-%d", i), id, fmt.Sprintf("uid-%d", i)))
	}
	notAHash := hashSecret("secret-x", "YYYYYYYY", "uid-x")
	notAHash.Type = corev1.SecretTypeOpaque
	list.Items = append(list.Items, *notAHash)
	scheme := runtime.NewScheme()
	_ = corev1.AddToScheme(scheme)
	var buf bytes.Buffer
	if err := protobuf.NewSerializer(scheme, scheme).Encode(list, &buf); err != nil {
		t.Fatal(err)
	}
	encoded := buf.Bytes()

	decode := func(b []byte) (*factsList, error) {
		br := bufio.NewReader(bytes.NewReader(b))
		if !isProtobuf(br) {
			t.Fatal("the API machinery's protobuf is not recognised as protobuf")
		}
		return decodeProtobufListFacts(br, func() runtime.Object { return &corev1.Secret{} }, reduceHashSecret)
	}
	out, err := decode(encoded)
	if err != nil {
		t.Fatal(err)
	}
	if out.ResourceVersion != "77" || len(out.Items) != 2 {
		t.Fatalf("resourceVersion %q, %d items; want 77 and the 2 hash Secrets", out.ResourceVersion, len(out.Items))
	}
	if f := out.Items[1].(*listedFacts).facts.(*HashFacts); f.KeyID != "ZZZZZZZZ" || f.SecretUID != "secret-1" || f.APIKeyUID != "uid-1" || len(f.Hash.Hash) == 0 {
		t.Errorf("facts %+v", f)
	}
	for _, cut := range []int{5, len(encoded) / 2, len(encoded) - 1} {
		if _, err := decode(encoded[:cut]); err == nil || !strings.Contains(err.Error(), "reading list") {
			t.Errorf("list cut at %d of %d bytes: error %v", cut, len(encoded), err)
		}
	}
	if isProtobuf(bufio.NewReader(strings.NewReader(`{"items":[]}`))) {
		t.Error("JSON taken for protobuf")
	}
}
