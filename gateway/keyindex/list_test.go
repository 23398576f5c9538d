package keyindex

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

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

// The JSON list decoder skips what no facts come from (managedFields,
// conditions) and matches names as the API server writes them: for an
// APIKey with every field the facts read, and for a hash Secret (should
// the API server answer a Secret list in JSON), its facts are the ones
// encoding/json's decoding of the same bytes gives.
func TestDecodeListFactsGivesTheFactsOfTheWholeObject(t *testing.T) {
	at := func(s string) *metav1.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		mt := metav1.NewTime(tm)
		return &mt
	}
	n := func(v int64) *int64 { return &v }
	key := gatewayv1alpha1.APIKey{
		TypeMeta: metav1.TypeMeta{Kind: "APIKey", APIVersion: gatewayv1alpha1.GroupVersion.String()},
		ObjectMeta: metav1.ObjectMeta{Name: "laptop", Namespace: "team", UID: "uid-1", ResourceVersion: "9",
			CreationTimestamp: *at("2026-05-01T12:00:00Z"), DeletionTimestamp: at("2026-05-03T12:00:00Z"),
			Labels: map[string]string{"team": "a"}, Annotations: map[string]string{"note": strings.Repeat("x", 300)},
			Finalizers: []string{gatewayv1alpha1.Finalizer},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationApply,
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:owner":{},"f:limits":{".":{}}}}`)}}}},
		Spec: gatewayv1alpha1.APIKeySpec{DisplayName: "Laptop \u00e9\u4e16", Owner: "alice", ExpiresAt: gatewayv1alpha1.NewExpiry(at("2026-06-01T00:00:00Z").Time),
			TTL: &gatewayv1alpha1.Lifetime{Duration: time.Hour}, Revoked: true, Models: []gatewayv1alpha1.ModelGlob{"gpt-*", "claude-*"},
			Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: n(60), TokensPerMinute: n(1000)},
			Budget: &gatewayv1alpha1.Budget{Tokens: n(5000), Period: gatewayv1alpha1.BudgetMonth}},
		Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseRevoked, Prefix: "cvk_ABCDEFGH",
			RevokedAt: at("2026-05-02T00:00:00Z"), LastUsedAt: at("2026-05-01T13:00:00Z"),
			Conditions: []metav1.Condition{{Type: "Ready", Status: metav1.ConditionFalse, Reason: "Revoked", LastTransitionTime: *at("2026-05-02T00:00:00Z")}},
			Usage:      &gatewayv1alpha1.Usage{PeriodStart: *at("2026-05-01T00:00:00Z"), Requests: 7, InputTokens: 100, OutputTokens: 200},
			Previous:   &gatewayv1alpha1.PreviousKey{Prefix: "cvk_ZZZZZZZZ", ExpiresAt: *at("2026-05-01T14:00:00Z"), LastUsedAt: at("2026-05-01T12:30:00Z")}},
	}
	// expiresAt as a bare date, as the CRD admits it (the start of that day).
	date, err := gatewayv1alpha1.ParseExpiry("2027-01-31")
	if err != nil {
		t.Fatal(err)
	}
	pending := gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Name: "new", Namespace: "team", UID: "uid-2"}, Spec: gatewayv1alpha1.APIKeySpec{Owner: "bob", ExpiresAt: date}}
	for name, tc := range map[string]struct {
		list    runtime.Object
		newItem func() runtime.Object
		reduce  func(runtime.Object) (any, bool)
		want    func(data []byte) []any
	}{
		"APIKeys": {
			list:    &gatewayv1alpha1.APIKeyList{ListMeta: metav1.ListMeta{ResourceVersion: "42"}, Items: []gatewayv1alpha1.APIKey{key, pending}},
			newItem: newAPIKey, reduce: reduceAPIKey,
			want: func(data []byte) []any {
				var l gatewayv1alpha1.APIKeyList
				if err := json.Unmarshal(data, &l); err != nil {
					t.Fatal(err)
				}
				var out []any
				for i := range l.Items {
					out = append(out, APIKeyFactsOf(&l.Items[i]))
				}
				return out
			},
		},
		"hash Secrets": {
			list:    &corev1.SecretList{ListMeta: metav1.ListMeta{ResourceVersion: "42"}, Items: []corev1.Secret{*hashSecret("secret-0", "ABCDEFGH", "uid-1")}},
			newItem: func() runtime.Object { return &corev1.Secret{} }, reduce: reduceHashSecret,
			want: func(data []byte) []any {
				var l corev1.SecretList
				if err := json.Unmarshal(data, &l); err != nil {
					t.Fatal(err)
				}
				f, ok := HashFactsOf(&l.Items[0])
				if !ok {
					t.Fatal("not a hash Secret")
				}
				return []any{f}
			},
		},
	} {
		data, err := json.Marshal(tc.list)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeListFacts(bytes.NewReader(data), tc.newItem, tc.reduce)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.ResourceVersion != "42" {
			t.Errorf("%s: resourceVersion %q, want 42", name, got.ResourceVersion)
		}
		var facts []any
		for _, item := range got.Items {
			switch f := item.(*listedFacts).facts.(type) {
			case *APIKeyFacts:
				facts = append(facts, *f)
			case *HashFacts:
				facts = append(facts, *f)
			}
		}
		if want := tc.want(data); !reflect.DeepEqual(facts, want) {
			t.Errorf("%s: facts\n%+v\nwant (encoding/json)\n%+v", name, facts, want)
		}
	}
}
