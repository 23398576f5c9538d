package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// A small load generator on net/http. It runs in the benchmark process, so
// on two cores it competes for CPU with whatever it measures; that is the
// same for every target, which is what makes the comparisons fair.

// chatBody is the request every load test sends: a small non-streamed chat
// completion, as an OpenAI client would.
var chatBody = []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`)

// target is one endpoint under load. All targets get the same request,
// Authorization header included (the upstream and the bare proxy ignore it).
type target struct {
	name   string
	url    string
	bearer string // "Bearer <key>"
}

// newClient returns a client that keeps exactly conns connections open to
// one host, so a closed loop of conns workers never dials mid-run.
func newClient(conns int) *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns,
			MaxConnsPerHost:     conns,
			IdleConnTimeout:     90 * time.Second,
			DisableCompression:  true,
		},
		Timeout: 30 * time.Second,
	}
}

// do sends one request and reads the whole response.
func (t target) do(ctx context.Context, c *http.Client, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", t.bearer)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

// loadResult is what one load run measured.
type loadResult struct {
	ok, failed int
	firstError string
	elapsed    time.Duration
	latencies  []time.Duration // sorted, successful requests only
	cpu        cpuUse
	maxLag     time.Duration // open loop: worst delay of a send behind its schedule
}

func (r loadResult) rate() float64 { return float64(r.ok) / r.elapsed.Seconds() }

// cpuPerRequest is this process's CPU time per successful request:
// load generator, proxy and upstream together.
func (r loadResult) cpuPerRequest() time.Duration {
	if r.ok == 0 {
		return 0
	}
	return r.cpu.selfTime / time.Duration(r.ok)
}

func (r loadResult) pct(p float64) time.Duration { return percentile(r.latencies, p) }

// pctMillis is the p-th percentile of each round, in milliseconds.
func pctMillis(rounds []loadResult, p float64) []float64 {
	out := make([]float64, len(rounds))
	for i, r := range rounds {
		out[i] = float64(r.pct(p)) / float64(time.Millisecond)
	}
	return out
}

// minus is a - b, round by round.
func minus(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] - b[i]
	}
	return out
}

// closedLoop runs conns workers, each sending its next request as soon as
// the previous answer is read, for d.
func closedLoop(t target, c *http.Client, conns int, d time.Duration) loadResult {
	var (
		mu     sync.Mutex
		res    loadResult
		wg     sync.WaitGroup
		before = sampleCPU()
	)
	deadline := before.at.Add(d)
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			failed, firstError := 0, ""
			for {
				start := time.Now()
				if !start.Before(deadline) {
					break
				}
				status, err := t.do(context.Background(), c, chatBody)
				if err != nil || status != http.StatusOK {
					failed++
					if firstError == "" {
						firstError = describeFailure(status, err)
					}
					continue
				}
				lat = append(lat, time.Since(start))
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.failed += failed
			if res.firstError == "" {
				res.firstError = firstError
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	after := sampleCPU()
	res.elapsed = after.at.Sub(before.at)
	res.cpu = cpuBetween(before, after)
	res.ok = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// openLoop sends rate requests per second for d on a fixed schedule, each
// in its own goroutine, whatever the answers take: a slow answer does not
// delay the next send (no coordinated omission). Latency is measured from
// the actual send; maxLag reports how far sends fell behind the schedule.
func openLoop(t target, c *http.Client, rate int, d time.Duration) loadResult {
	n := int(float64(rate) * d.Seconds())
	interval := time.Second / time.Duration(rate)
	lat := make([]time.Duration, n)
	var (
		wg              sync.WaitGroup
		failed          atomic.Int64
		firstError      atomic.Pointer[string]
		res             loadResult
		before          = sampleCPU()
		scheduleStart   = before.at
		dispatchLagging time.Duration
	)
	for i := range n {
		at := scheduleStart.Add(time.Duration(i) * interval)
		if wait := time.Until(at); wait > 0 {
			time.Sleep(wait)
		}
		dispatchLagging = max(dispatchLagging, time.Since(at))
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			status, err := t.do(context.Background(), c, chatBody)
			if err != nil || status != http.StatusOK {
				failed.Add(1)
				msg := describeFailure(status, err)
				firstError.CompareAndSwap(nil, &msg)
				lat[i] = -1
				return
			}
			lat[i] = time.Since(start)
		}()
	}
	wg.Wait()
	after := sampleCPU()
	res.elapsed = after.at.Sub(before.at)
	res.cpu = cpuBetween(before, after)
	res.maxLag = dispatchLagging
	res.failed = int(failed.Load())
	if p := firstError.Load(); p != nil {
		res.firstError = *p
	}
	for _, l := range lat {
		if l >= 0 {
			res.latencies = append(res.latencies, l)
		}
	}
	res.ok = len(res.latencies)
	slices.Sort(res.latencies)
	return res
}

// sliced runs measure on each target in turn, slice by slice, until each
// has had d: background load that drifts during a run then falls on all
// targets alike instead of on whichever ran last. Each target first gets a
// one-second warm-up.
func sliced(targets []target, d time.Duration, measure func(ti int, t target, d time.Duration) loadResult) []loadResult {
	const slice = time.Second
	for ti, t := range targets {
		measure(ti, t, slice)
	}
	out := make([]loadResult, len(targets))
	for done := time.Duration(0); done < d; done += slice {
		for ti, t := range targets {
			out[ti] = out[ti].merge(measure(ti, t, min(slice, d-done)))
		}
	}
	return out
}

// merge adds b's requests to r, as if both had been one run.
func (r loadResult) merge(b loadResult) loadResult {
	weighted := func(x, y float64) float64 {
		total := (r.elapsed + b.elapsed).Seconds()
		if total == 0 {
			return 0
		}
		return (x*r.elapsed.Seconds() + y*b.elapsed.Seconds()) / total
	}
	m := loadResult{
		ok:         r.ok + b.ok,
		failed:     r.failed + b.failed,
		firstError: r.firstError,
		elapsed:    r.elapsed + b.elapsed,
		latencies:  append(slices.Clone(r.latencies), b.latencies...),
		maxLag:     max(r.maxLag, b.maxLag),
		cpu: cpuUse{
			machine:      weighted(r.cpu.machine, b.cpu.machine),
			self:         weighted(r.cpu.self, b.cpu.self),
			controlPlane: weighted(r.cpu.controlPlane, b.cpu.controlPlane),
			other:        weighted(r.cpu.other, b.cpu.other),
			selfTime:     r.cpu.selfTime + b.cpu.selfTime,
		},
	}
	if m.firstError == "" {
		m.firstError = b.firstError
	}
	slices.Sort(m.latencies)
	return m
}

func describeFailure(status int, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("HTTP %d", status)
}

// percentile is the nearest-rank percentile p (0-100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func sortedCopy(d []time.Duration) []time.Duration {
	out := slices.Clone(d)
	slices.Sort(out)
	return out
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
