package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/internal/testenv"
)

// Open-loop load on keys with per-minute limits, counted per calendar
// minute (the gateway's windows are epoch-aligned minutes).

// limitedKey is one key under load: what it sends, how fast, and the
// limit its admissions are judged against.
type limitedKey struct {
	name   string
	bearer string
	entry  *keyindex.Entry // as the gateways see it
	body   []byte
	rate   float64 // requests per second
	limit  int64   // per minute, in requests or (tokens) tokens
	tokens bool    // judged in tokens (the usage the upstream reports)
}

// outcome is one request of a limitedKey.
type outcome struct {
	sent   time.Time
	status int // 0: no answer
	tokens int64
	err    string
}

// keyLoad is what driveKeys recorded for one key, in send order.
type keyLoad struct {
	mu       sync.Mutex
	outcomes []outcome
}

// driveKeys sends each key's requests on a fixed schedule (open loop: a
// slow answer never delays the next send) from now until until, spread
// round-robin over the gateway URLs urls holds at each send (benchmarks
// swap it when a replica goes away, as a Service would). Each request is
// recorded with its send time.
func driveKeys(keys []*limitedKey, urls *atomic.Pointer[[]string], until time.Time) []*keyLoad {
	c := newClient(256)
	defer c.CloseIdleConnections()
	loads := make([]*keyLoad, len(keys))
	var all sync.WaitGroup
	for ki, k := range keys {
		loads[ki] = &keyLoad{}
		all.Go(func() {
			var inFlight sync.WaitGroup
			interval := time.Duration(float64(time.Second) / k.rate)
			start := time.Now()
			for i := 0; ; i++ {
				at := start.Add(time.Duration(i) * interval)
				if !at.Before(until) {
					break
				}
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				if !time.Now().Before(until) {
					// Fell behind the schedule: a send now would
					// land in the minute after the run.
					break
				}
				us := *urls.Load()
				url := us[i%len(us)]
				inFlight.Go(func() {
					o := sendLimited(c, url, k)
					loads[ki].mu.Lock()
					loads[ki].outcomes = append(loads[ki].outcomes, o)
					loads[ki].mu.Unlock()
				})
			}
			inFlight.Wait()
		})
	}
	all.Wait()
	return loads
}

// sendLimited sends k's request to the gateway at base and reads the
// usage of an admitted answer.
func sendLimited(c *http.Client, base string, k *limitedKey) outcome {
	o := outcome{sent: time.Now()}
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost,
		base+"/gateway/openai/v1/chat/completions", bytes.NewReader(k.body))
	if err != nil {
		o.err = err.Error()
		return o
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", k.bearer)
	resp, err := c.Do(req)
	if err != nil {
		o.err = err.Error()
		return o
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	o.status = resp.StatusCode
	if err != nil {
		o.err = err.Error()
		return o
	}
	if resp.StatusCode == http.StatusOK {
		var u struct {
			Usage struct {
				Total int64 `json:"total_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(body, &u); err != nil {
			o.err = "answer without usage: " + err.Error()
		}
		o.tokens = u.Usage.Total
	} else if resp.StatusCode != http.StatusTooManyRequests {
		o.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	return o
}

// windowCounts are one key's requests sent in one window.
type windowCounts struct {
	start                      time.Time
	sent, admitted, refused    int
	failed                     int
	admittedTokens             int64
	firstError                 string
	partial                    bool // the run started inside this window
	admittedBefore, sentBefore int  // before a cut-off within the window (the kill)
}

// admittedAmount is what the window admitted in the key's unit.
func (w windowCounts) admittedAmount(k *limitedKey) int64 {
	if k.tokens {
		return w.admittedTokens
	}
	return int64(w.admitted)
}

// perWindow groups a key's outcomes by the calendar minute they were sent
// in. Requests sent before cut count in admittedBefore/sentBefore too.
func perWindow(l *keyLoad, runStart, cut time.Time) []windowCounts {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []windowCounts
	index := map[time.Time]int{}
	for _, o := range l.outcomes {
		ws := o.sent.Truncate(time.Minute)
		i, ok := index[ws]
		if !ok {
			i = len(out)
			index[ws] = i
			out = append(out, windowCounts{start: ws, partial: runStart.After(ws)})
		}
		w := &out[i]
		w.sent++
		before := !cut.IsZero() && o.sent.Before(cut)
		if before {
			w.sentBefore++
		}
		switch {
		case o.status == http.StatusOK:
			w.admitted++
			w.admittedTokens += o.tokens
			if before {
				w.admittedBefore++
			}
		case o.status == http.StatusTooManyRequests:
			w.refused++
		default:
			w.failed++
			if w.firstError == "" {
				w.firstError = o.err
			}
		}
	}
	// Outcomes arrive in completion order; windows sort by start.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].start.Before(out[j-1].start); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// issueLimitedKey issues a key with the given limits and returns it once
// every gateway in urls has its policy (warming each one's verified-key
// cache with one request).
func issueLimitedKey(b *testing.B, ns, name string, limits gatewayv1alpha1.Limits, gateways []*peeredReplica) (string, *keyindex.Entry) {
	b.Helper()
	k, key := env.IssueKey(b, ns, name, func(k *gatewayv1alpha1.APIKey) { k.Spec.Limits = &limits })
	keyID := strings.TrimPrefix(k.Status.Prefix, "cvk_")
	var entry *keyindex.Entry
	testenv.Eventually(b, 10*time.Second, func() error {
		for i, gw := range gateways {
			e := gw.gw.Index().Lookup(keyID)
			if e == nil || e.Policy == nil || e.Policy.Limits == nil {
				return fmt.Errorf("replica %d has not seen the policy of %s", i, name)
			}
			entry = e
		}
		return nil
	})
	bearer := "Bearer " + key.Reveal()
	c := newClient(1)
	defer c.CloseIdleConnections()
	for _, gw := range gateways {
		t := target{name: gw.url, url: gw.url + "/gateway/openai/v1/chat/completions", bearer: bearer}
		testenv.Eventually(b, 30*time.Second, func() error {
			status, err := t.do(context.Background(), c, chatBody)
			if err != nil || (status != http.StatusOK && status != http.StatusTooManyRequests) {
				return fmt.Errorf("warming %s on %s: %s", name, gw.url, describeFailure(status, err))
			}
			return nil
		})
	}
	return bearer, entry
}

// fullWindows is BENCH_POLICY_DURATION in whole minutes (at least one).
func fullWindows() int {
	return max(1, int(envDuration("BENCH_POLICY_DURATION", 2*time.Minute)/time.Minute))
}

// ratio formats admitted/limit.
func ratio(admitted, limit int64) string {
	return fmt.Sprintf("%.3f", float64(admitted)/float64(limit))
}

func within(admitted, limit int64, lo, hi float64) bool {
	r := float64(admitted) / float64(limit)
	return r >= lo && r <= hi
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
