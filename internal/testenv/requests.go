package testenv

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
)

// RequestCounter counts the API requests that pass through a rest.Config
// by verb and resource ("create secrets", "patch apikeys/status", "list
// secrets"), so a benchmark can say what each issued key costs, not only
// how many requests by HTTP method client-go's metric tells. The zero
// value is ready to use.
type RequestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap returns a copy of cfg whose requests are counted.
func (c *RequestCounter) Wrap(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			c.add(RequestKind(req))
			return rt.RoundTrip(req)
		})
	})
	return cfg
}

func (c *RequestCounter) add(kind string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.counts == nil {
		c.counts = map[string]int{}
	}
	c.counts[kind]++
}

// Snapshot is a copy of the counts so far, by RequestKind.
func (c *RequestCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// PerKey describes the requests between two snapshots per key (n keys),
// most frequent first: "total 5.00, create secrets 2.00, ...".
func PerKey(before, after map[string]int, n int) string {
	type kv struct {
		kind  string
		count int
	}
	var rows []kv
	total := 0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			rows = append(rows, kv{k, d})
			total += d
		}
	}
	slices.SortFunc(rows, func(a, b kv) int {
		if a.count != b.count {
			return b.count - a.count
		}
		return strings.Compare(a.kind, b.kind)
	})
	parts := []string{fmt.Sprintf("total %.2f", float64(total)/float64(n))}
	for _, r := range rows {
		parts = append(parts, fmt.Sprintf("%s %.2f", r.kind, float64(r.count)/float64(n)))
	}
	return strings.Join(parts, ", ")
}

// RequestKind names a Kubernetes API request by verb and resource, from
// its method and path (/api/v1/namespaces/NS/secrets/NAME,
// /apis/GROUP/VERSION/namespaces/NS/RESOURCE/NAME/SUBRESOURCE).
func RequestKind(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		parts = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		parts = parts[3:]
	default:
		return strings.ToLower(req.Method) + " " + req.URL.Path
	}
	if len(parts) >= 2 && parts[0] == "namespaces" && len(parts) > 2 {
		parts = parts[2:]
	}
	resource, named := "", false
	if len(parts) > 0 {
		resource = parts[0]
	}
	if len(parts) > 1 {
		named = true
	}
	if len(parts) > 2 {
		resource += "/" + parts[2]
	}
	verb := map[string]string{http.MethodPost: "create", http.MethodPut: "update", http.MethodPatch: "patch", http.MethodDelete: "delete"}[req.Method]
	if req.Method == http.MethodGet {
		switch {
		case req.URL.Query().Get("watch") == "true":
			verb = "watch"
		case named:
			verb = "get"
		default:
			verb = "list"
		}
	}
	return verb + " " + resource
}
