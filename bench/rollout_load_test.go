package bench

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// The rollout benchmark's keys, load and per-second accounting.

// plantRolloutKeys writes n Active keys to ns whose hash Secrets hold real
// argon2id hashes (rolloutParams) of secrets it returns, as bearer
// headers. Hashing runs on every core; the writes go through a client of
// their own, so the API server bounds them, not client-side throttling.
func plantRolloutKeys(b *testing.B, ns string, n int) []string {
	b.Helper()
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 5000, 10000
	c, err := client.New(cfg, client.Options{Scheme: env.Client.Scheme()})
	if err != nil {
		b.Fatal(err)
	}
	bearers := make([]string, n)
	errs := make([]error, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				k, err := keys.Generate()
				if err == nil {
					var phc keys.PHC
					if phc, err = hashPHC(k, rolloutParams); err == nil {
						err = testenv.PlantKey(context.Background(), c, ns, fmt.Sprintf("k-%05d", i), k, phc)
					}
				}
				if err != nil {
					errs[i] = err
					return
				}
				bearers[i] = "Bearer " + k.Reveal()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return bearers
}

func hashPHC(k keys.Key, p keys.Params) (keys.PHC, error) {
	s, err := keys.Hash(k, p)
	if err != nil {
		return keys.PHC{}, err
	}
	return keys.ParsePHC(s)
}

// warmReplicas sends every key to every replica, a few requests at a time
// each, until each has answered 200 for all of them: the steady state of
// replicas that have run for a while. Replica i starts its sweep i/n of
// the way through the keys, so that with proof sharing most keys reach it
// after a peer has verified them, as keys in use do. It returns how long
// that took.
func warmReplicas(b *testing.B, replicas []*peeredReplica, bearers []string) time.Duration {
	b.Helper()
	const perReplica = 4 // the per-client argon2 queue (auth's slotsPerClient)
	start := time.Now()
	c := newClient(perReplica)
	defer c.CloseIdleConnections()
	errs := make([]error, len(replicas)*perReplica)
	var wg sync.WaitGroup
	for ri, r := range replicas {
		for w := range perReplica {
			wg.Go(func() {
				offset := ri * len(bearers) / len(replicas)
				for j := w; j < len(bearers); j += perReplica {
					bearer := bearers[(offset+j)%len(bearers)]
					if err := untilOKWith(c, target{name: r.url, url: r.url + chatPath, bearer: bearer}, time.Minute); err != nil {
						errs[ri*perReplica+w] = err
						return
					}
				}
			})
		}
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for tick := time.NewTicker(15 * time.Second); ; {
		select {
		case <-done:
			tick.Stop()
			if err := errors.Join(errs...); err != nil {
				b.Fatal(err)
			}
			return time.Since(start)
		case <-tick.C:
			fmt.Printf("%s rollout warm-up: %v, keys verified per replica %d\n", clockNow(), time.Since(start).Round(time.Second), verifiedCounts(replicas))
		}
	}
}

// metricsClient reads the replicas' /metrics.
var metricsClient = &http.Client{Timeout: 5 * time.Second}

// proofCounts are what replica r can authenticate without argon2, from
// its /metrics: the keys in its verified-key cache (the gauge
// codevector_gateway_verified_keys) and the proofs it holds, made there
// or learned from a peer (codevector_gateway_peer_proofs, 0 without
// proof sharing); -1 each when /metrics cannot be read.
func proofCounts(r *peeredReplica) (verified, proofs int) {
	const verifiedGauge, proofsGauge = "codevector_gateway_verified_keys", "codevector_gateway_peer_proofs"
	g, err := gauges(metricsClient, r.metrics, verifiedGauge, proofsGauge)
	if err != nil {
		return -1, -1
	}
	return int(g[verifiedGauge]), int(g[proofsGauge])
}

func verifiedCounts(replicas []*peeredReplica) []int {
	out := make([]int, len(replicas))
	for i, r := range replicas {
		out[i], _ = proofCounts(r)
	}
	return out
}

// spreadClient is newClient with its connections dialled from rotating
// loopback addresses 127.1.0.1 to 127.1.0.<clients>: to a gateway, many
// key holders behind a Service, each under its own per-client limits
// (connections, argon2 queue, tarpit), not one client holding them all.
func spreadClient(conns, clients int) *http.Client {
	c := newClient(conns)
	var next atomic.Uint32
	c.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		source := net.IPv4(127, 1, 0, byte(1+next.Add(1)%uint32(clients)))
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: source}}
		return d.DialContext(ctx, network, addr)
	}
	return c
}

// rolloutSample is one request of the load.
type rolloutSample struct {
	replica string // the URL it was sent to
	sent    time.Time
	took    time.Duration
	status  int    // 0: no answer
	err     string // why not 200
}

// randomKeyLoad sends requests open loop (a slow answer never delays the
// next send) at a fixed rate, each with a key drawn at random and to the
// next of the replicas lb holds when it is sent, round robin.
type randomKeyLoad struct {
	halt    chan struct{}
	done    chan struct{}
	mu      sync.Mutex
	samples []rolloutSample
	maxLag  time.Duration
}

func startRandomKeyLoad(bearers []string, lb *atomic.Pointer[[]string], rate int) *randomKeyLoad {
	l := &randomKeyLoad{halt: make(chan struct{}), done: make(chan struct{})}
	c := spreadClient(1024, rolloutClients)
	go func() {
		defer close(l.done)
		defer c.CloseIdleConnections()
		var inFlight sync.WaitGroup
		interval := time.Second / time.Duration(rate)
		start := time.Now()
		for i := 0; ; i++ {
			at := start.Add(time.Duration(i) * interval)
			if wait := time.Until(at); wait > 0 {
				time.Sleep(wait)
			}
			select {
			case <-l.halt:
				inFlight.Wait()
				return
			default:
			}
			l.maxLag = max(l.maxLag, time.Since(at))
			urls := *lb.Load()
			replica := urls[i%len(urls)]
			t := target{url: replica + chatPath, bearer: bearers[rand.IntN(len(bearers))]}
			inFlight.Go(func() {
				s := rolloutSample{replica: replica, sent: time.Now()}
				status, err := t.do(context.Background(), c, chatBody)
				s.took, s.status = time.Since(s.sent), status
				if err != nil || status != http.StatusOK {
					s.err = describeFailure(status, err)
				}
				l.mu.Lock()
				l.samples = append(l.samples, s)
				l.mu.Unlock()
			})
		}
	}()
	return l
}

// stop ends the load, waits for the answers still due and returns every
// request in the order they were sent.
func (l *randomKeyLoad) stop() ([]rolloutSample, time.Duration) {
	close(l.halt)
	<-l.done
	sort.Slice(l.samples, func(i, j int) bool { return l.samples[i].sent.Before(l.samples[j].sent) })
	return l.samples, l.maxLag
}

// rolloutWindow is the requests sent in one interval: 200 latencies as a
// loadResult (failed: every other outcome), and the 503s among the failed.
type rolloutWindow struct {
	loadResult
	refused int
}

// window summarises the requests of samples (in send order) sent in
// [from, to).
func window(samples []rolloutSample, from, to time.Time) rolloutWindow {
	return windowOf(samples, from, to, func(rolloutSample) bool { return true })
}

// windowOf is window of the samples that match.
func windowOf(samples []rolloutSample, from, to time.Time, match func(rolloutSample) bool) rolloutWindow {
	lo := sort.Search(len(samples), func(i int) bool { return !samples[i].sent.Before(from) })
	hi := sort.Search(len(samples), func(i int) bool { return !samples[i].sent.Before(to) })
	w := rolloutWindow{loadResult: loadResult{elapsed: to.Sub(from)}}
	for _, s := range samples[lo:hi] {
		if !match(s) {
			continue
		}
		switch s.status {
		case http.StatusOK:
			w.latencies = append(w.latencies, s.took)
			continue
		case http.StatusServiceUnavailable:
			w.refused++
		}
		w.failed++
		if w.firstError == "" {
			w.firstError = s.err
		}
	}
	w.ok = len(w.latencies)
	slices.Sort(w.latencies)
	return w
}

// good is a second as good as the steady state: p99 within limit, and
// nothing but 200s.
func (w rolloutWindow) good(limit time.Duration) bool {
	return w.failed == 0 && w.ok > 0 && w.pct(99) <= limit
}

// recoveredAt is the start of the first second after from from which every
// whole second to to is good, if the last one is.
func recoveredAt(samples []rolloutSample, from, to time.Time, limit time.Duration) (time.Time, bool) {
	at, ok := from, true
	for s := from; !s.Add(time.Second).After(to); s = s.Add(time.Second) {
		ok = window(samples, s, s.Add(time.Second)).good(limit)
		if !ok {
			at = s.Add(time.Second)
		}
	}
	return at, ok
}

// timeline is what happened when during the rollout.
type timeline struct {
	mu     sync.Mutex
	at     []time.Time
	events []string
}

func (t *timeline) add(at time.Time, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.at = append(t.at, at)
	t.events = append(t.events, what)
}

func (t *timeline) between(from, to time.Time) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for i, at := range t.at {
		if !at.Before(from) && at.Before(to) {
			out = append(out, t.events[i])
		}
	}
	return strings.Join(out, "; ")
}

// rolloutTimeline is the per-second record summarised in rows of every:
// each row's requests, its percentiles, its worst second and how many of
// its seconds were not good (p99 over limit, or anything but 200).
func rolloutTimeline(samples []rolloutSample, from, to, zero time.Time, every, limit time.Duration, events *timeline) *table {
	tb := newTable("seconds from the rollout's start", "events", "requests", "503", "other non-200", "p50 ms", "p99 ms", "worst 1s p99 ms", "seconds not like steady state")
	for rs, re := from, from; rs.Before(to); rs = re {
		re = rs.Add(every)
		if to.Sub(re) < time.Second {
			re = to // the last row takes what is left
		}
		w := window(samples, rs, re)
		var worst time.Duration
		bad := 0
		for s := rs; s.Before(re); s = s.Add(time.Second) {
			end := s.Add(time.Second)
			if end.After(re) {
				end = re
			}
			sec := window(samples, s, end)
			worst = max(worst, sec.pct(99))
			if !sec.good(limit) {
				bad++
			}
		}
		tb.row(fmt.Sprintf("%+.0f to %+.0f", rs.Sub(zero).Seconds(), re.Sub(zero).Seconds()), events.between(rs, re),
			w.ok+w.failed, w.refused, w.failed-w.refused, ms(w.pct(50)), ms(w.pct(99)), ms(worst), bad)
	}
	return tb
}

// noteListed adds an event to events once new replica r (the n-th,
// started at started) has every APIKey in its index (the gauge
// codevector_gateway_apikeys_listed): a replica that holds every hash is
// ready up to 2 s before that, and until then reads the APIKey of each key
// not listed yet from the API server on its first request. It polls r's
// /metrics every 100 ms until then, done is closed or a minute has passed.
func noteListed(r *peeredReplica, n int, started time.Time, events *timeline, done <-chan struct{}) {
	const listedGauge = "codevector_gateway_apikeys_listed"
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		if g, err := gauges(metricsClient, r.metrics, listedGauge); err == nil && g[listedGauge] == 1 {
			events.add(time.Now(), fmt.Sprintf("%d has every APIKey listed (%.1fs after its start)", n, time.Since(started).Seconds()))
			return
		}
		select {
		case <-done:
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// byReplica is the table of the requests sent to each replica in
// [from, to): which replicas the slow answers came from.
func byReplica(samples []rolloutSample, from, to time.Time, replicas []*peeredReplica) *table {
	tb := newTable("replica", "requests", "503", "other non-200", "p50 ms", "p99 ms", "max ms")
	for i, r := range replicas {
		w := windowOf(samples, from, to, func(s rolloutSample) bool { return s.replica == r.url })
		if w.ok+w.failed == 0 {
			continue
		}
		tb.row(i+1, w.ok+w.failed, w.refused, w.failed-w.refused, ms(w.pct(50)), ms(w.pct(99)), ms(w.pct(100)))
	}
	return tb
}

// minProven is the fewest keys any of replicas can authenticate without
// argon2: those in its verified-key cache or, with proof sharing, those
// it holds a proof of (its own or a peer's), whichever is more.
func minProven(replicas []*peeredReplica) int {
	fewest := -1
	for _, r := range replicas {
		verified, proofs := proofCounts(r)
		n := max(verified, proofs)
		if fewest < 0 || n < fewest {
			fewest = n
		}
	}
	return fewest
}

// clockNow is the time of day for progress lines.
func clockNow() string { return time.Now().UTC().Format("15:04:05") }
