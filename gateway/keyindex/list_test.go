package keyindex

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

func reduceAPIKey(o runtime.Object) (any, bool) {
	f := APIKeyFactsOf(o.(*gatewayv1alpha1.APIKey))
	return &f, f.KeyID != ""
}

func newAPIKey() runtime.Object { return &gatewayv1alpha1.APIKey{} }

func TestDecodeListFactsStreamsItems(t *testing.T) {
	body := `{"kind":"APIKeyList","apiVersion":"codevector.io/v1alpha1","metadata":{"resourceVersion":"42","continue":""},"items":[
		{"metadata":{"name":"laptop","namespace":"team","uid":"u1"},"spec":{"owner":"alice","displayName":"Laptop"},"status":{"phase":"Active","prefix":"cvk_ABCDEFGH"}},
		{"metadata":{"name":"pending","namespace":"team","uid":"u2"},"spec":{"owner":"alice"}}
	],"extra":{"ignored":[1,2]}}`
	list, err := decodeListFacts(strings.NewReader(body), newAPIKey, reduceAPIKey)
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
		if _, err := decodeListFacts(strings.NewReader(body), newAPIKey, reduceAPIKey); err == nil {
			t.Errorf("%s: accepted", name)
		} else if !strings.Contains(err.Error(), "reading list") {
			t.Errorf("%s: error %q does not say it was reading a list", name, err)
		}
	}
}
