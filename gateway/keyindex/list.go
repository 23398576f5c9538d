package keyindex

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
)

// factsListWatch lists and watches resource in namespace ("" = all). A
// list is decoded as it streams in and each object reduced to its facts at
// once, so only one full object is in memory at a time: a reflector's own
// list holds the whole response and every object decoded from it, over
// 800 MiB for a moment at 100,000 keys, enough for a memory limit to kill
// the gateway while it starts.
//
// It opts out of the streaming watch-list too: that path also holds every
// full object until the stream ends, and decodes each one twice more than
// a list does (the gateway was ready at 100,000 keys in 11 s with it, in
// 7 s without).
type factsListWatch struct {
	toolscache.ListWatch
	// list reads one list, whole, and decodes it to facts.
	list func(ctx context.Context, opts metav1.ListOptions) (*factsList, error)
}

func (factsListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// newFactsListWatch: newItem returns an empty object of the listed type;
// lists are decoded as they stream in, from JSON or protobuf.
func newFactsListWatch(c rest.Interface, resource, namespace string, fieldSelector fields.Selector, labelSelector labels.Selector, newItem func() runtime.Object, reduce func(runtime.Object) (any, bool)) *factsListWatch {
	request := func(opts *metav1.ListOptions) *rest.Request {
		opts.FieldSelector, opts.LabelSelector = fieldSelector.String(), labelSelector.String()
		return c.Get().Namespace(namespace).Resource(resource).VersionedParams(opts, metav1.ParameterCodec)
	}
	lw := &factsListWatch{list: func(ctx context.Context, opts metav1.ListOptions) (*factsList, error) {
		body, err := request(&opts).Stream(ctx)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		// The client asks for protobuf where the type has it (Secrets;
		// custom resources are JSON only), and the server may answer
		// either way.
		br := bufio.NewReaderSize(body, 64<<10)
		if isProtobuf(br) {
			return decodeProtobufListFacts(br, newItem, reduce)
		}
		return decodeListFacts(br, newItem, reduce)
	}}
	lw.ListWithContextFunc = func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
		return lw.fullList(ctx, opts)
	}
	lw.WatchFuncWithContext = func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.Watch = true
		w, err := request(&opts).Watch(ctx)
		if err != nil && ctx.Err() != nil {
			// Stopped on purpose (shutdown, or fresh watches after an
			// outage): io.EOF is how a reflector is told quietly; any
			// other error it logs as a failure.
			return nil, io.EOF
		}
		return w, err
	}
	return lw
}

// fullList reads every object in one response, however long: pages would
// each be a consistent read that the API server may send to etcd, and at
// 100,000 keys 200 of them took longer than the whole list.
func (lw *factsListWatch) fullList(ctx context.Context, opts metav1.ListOptions) (*factsList, error) {
	opts.Limit, opts.Continue = 0, ""
	return lw.list(ctx, opts)
}

// currentVersion reads the resource version the API server is at now,
// with a list of at most one object read from etcd.
func (lw *factsListWatch) currentVersion(ctx context.Context) (string, error) {
	l, err := lw.list(ctx, metav1.ListOptions{Limit: 1})
	if err != nil {
		return "", err
	}
	if l.ResourceVersion == "" {
		return "", fmt.Errorf("the list carries no resourceVersion")
	}
	return l.ResourceVersion, nil
}

// decodeListFacts reads a JSON list ({"metadata": ..., "items": [...]})
// item by item, keeping only each item's facts.
//
// Custom resources come as JSON only, and at 100,000 APIKeys that is
// 160 MB. encoding/json took 45 µs of CPU per APIKey (4.5 s per gateway
// start, on the two cores the API server needs to encode the same list);
// the JSON v2 decoder (github.com/go-json-experiment/json, the
// encoding/json/v2 of later Go releases) takes about a fifth of that, and
// less again because it skips managedFields and conditions, half of every
// object's bytes, without decoding them: no reduce function reads them.
// Like the API machinery's own decoder (sigs.k8s.io/json), it matches
// field names case-sensitively.
func decodeListFacts(r io.Reader, newItem func() runtime.Object, reduce func(runtime.Object) (any, bool)) (*factsList, error) {
	dec := jsontext.NewDecoder(r, jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true))
	expect := func(want jsontext.Kind) error {
		t, err := dec.ReadToken()
		if err != nil {
			return fmt.Errorf("reading list: %w", err)
		}
		if t.Kind() != want {
			return fmt.Errorf("reading list: found %v where %v belongs", t.Kind(), want)
		}
		return nil
	}
	if err := expect('{'); err != nil {
		return nil, err
	}
	out := &factsList{}
	for dec.PeekKind() != '}' {
		t, err := dec.ReadToken()
		if err != nil {
			return nil, fmt.Errorf("reading list: %w", err)
		}
		switch t.String() {
		case "metadata":
			err = json.UnmarshalDecode(dec, &out.ListMeta)
		case "items":
			if err = expect('['); err != nil {
				return nil, err
			}
			for dec.PeekKind() != ']' {
				item := newItem()
				if err := json.UnmarshalDecode(dec, item, skipUnread); err != nil {
					return nil, fmt.Errorf("reading list item %d: %w", len(out.Items), err)
				}
				if f, ok := reduce(item); ok {
					out.Items = append(out.Items, &listedFacts{f})
				}
			}
			err = expect(']')
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return nil, fmt.Errorf("reading list: %w", err)
		}
	}
	return out, expect('}')
}

// skipUnread passes over the parts of an object that no facts come from.
// ReadValue, not SkipValue: it scans a value at once instead of token by
// token.
var skipUnread = json.WithUnmarshalers(json.JoinUnmarshalers(
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *[]metav1.ManagedFieldsEntry) error {
		_, err := dec.ReadValue()
		return err
	}),
	json.UnmarshalFromFunc(func(dec *jsontext.Decoder, _ *[]metav1.Condition) error {
		_, err := dec.ReadValue()
		return err
	}),
))

// factsList is a list already reduced to facts, what the stores' Replace
// receives from a factsListWatch.
type factsList struct {
	metav1.ListMeta
	Items []runtime.Object
}

func (l *factsList) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

func (l *factsList) DeepCopyObject() runtime.Object {
	c := *l
	c.Items = slices.Clone(l.Items)
	return &c
}

// listedFacts carries one object's facts (*APIKeyFacts or *HashFacts)
// through the reflector, which wants runtime.Objects.
type listedFacts struct{ facts any }

func (l *listedFacts) GetObjectKind() schema.ObjectKind { return schema.EmptyObjectKind }

// DeepCopyObject returns l itself: facts are never modified.
func (l *listedFacts) DeepCopyObject() runtime.Object { return l }
