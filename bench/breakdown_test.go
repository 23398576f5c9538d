package bench

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/proxy"
)

// BenchmarkGatewayBreakdown splits the gateway's cost per request into
// layers: a bare ReverseProxy, the same with FlushInterval -1 (which
// gateway/proxy no longer sets), gateway/proxy's Proxy alone (no routing, no
// authentication), and the whole gateway. It is a diagnostic, not a
// figure with a target (docs/benchmarks.md, "Gateway request path" says
// what it found), so `make bench` skips it; run it with
// BENCH_BREAKDOWN=1.
func BenchmarkGatewayBreakdown(b *testing.B) {
	if os.Getenv("BENCH_BREAKDOWN") == "" {
		b.Skip("diagnostic; set BENCH_BREAKDOWN=1 to run it")
	}
	rounds := envInt("BENCH_ROUNDS", 3)
	connCounts := envInts("BENCH_CONNS", []int{1, 16})
	d := envDuration("BENCH_DURATION", 4*time.Second)
	s := setUpGateway(b, http.HandlerFunc(fixedUpstream), false)
	up, err := url.Parse(s.direct.url)
	if err != nil {
		b.Fatal(err)
	}
	up.Path = ""
	flushing := serve(b, &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(up)
			pr.SetXForwarded()
		},
		FlushInterval: -1,
		Transport:     upstreamTransport(),
	})
	proxyOnly := serve(b, proxy.New(benchProviders(b, up.String(), false), proxy.Options{
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}))
	targets := []target{
		s.direct,
		s.bare,
		{name: "bare ReverseProxy, FlushInterval -1", url: flushing + "/v1/chat/completions", bearer: s.direct.bearer},
		{name: "gateway/proxy.Proxy alone", url: proxyOnly + "/gateway/openai/v1/chat/completions", bearer: s.direct.bearer},
		s.gateway,
	}
	for _, t := range targets {
		waitOK(b, t)
	}

	tb := newTable(append([]string{"target"}, func() (h []string) {
		for _, c := range connCounts {
			h = append(h, fmt.Sprintf("CPU µs/req, %d conns", c), fmt.Sprintf("req/s, %d conns", c))
		}
		return h
	}()...)...)
	cpu := map[int][][]float64{}
	rate := map[int][][]float64{}
	for round := 1; round <= rounds; round++ {
		for _, c := range connCounts {
			if cpu[c] == nil {
				cpu[c], rate[c] = make([][]float64, len(targets)), make([][]float64, len(targets))
			}
			for ti, t := range targets {
				cl := newClient(c)
				closedLoop(t, cl, c, time.Second)
				r := closedLoop(t, cl, c, d)
				cl.CloseIdleConnections()
				cpu[c][ti] = append(cpu[c][ti], float64(r.cpuPerRequest())/float64(time.Microsecond))
				rate[c][ti] = append(rate[c][ti], r.rate())
				fmt.Printf("breakdown round %d conns %d %-36s %6.0f req/s %6.1f µs/req other %.2f cores\n", round, c, t.name, r.rate(), cpu[c][ti][round-1], r.cpu.other)
			}
		}
	}
	for ti, t := range targets {
		cells := []any{t.name}
		for _, c := range connCounts {
			cells = append(cells, medianSpread(cpu[c][ti], "%.1f"), medianSpread(rate[c][ti], "%.0f"))
		}
		tb.row(cells...)
	}
	results.add(section{
		title:   "Diagnostic: where the gateway's CPU per request goes",
		command: "BENCH_BREAKDOWN=1 " + benchCommand("BenchmarkGatewayBreakdown"),
		tables:  []*table{tb},
		notes: []string{
			fmt.Sprintf("Closed loop, %v per point, %d interleaved rounds; cells are the median and, in brackets, each round. CPU is this whole process's (load generator + proxy + upstream) per request, which other processes' load barely moves, unlike req/s.", d, rounds),
		},
	})
}

// medianSpread formats the median of xs and each value.
func medianSpread(xs []float64, format string) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	out := fmt.Sprintf(format, s[len(s)/2])
	if len(xs) > 1 {
		out += " ("
		for i, x := range xs {
			if i > 0 {
				out += ", "
			}
			out += fmt.Sprintf(format, x)
		}
		out += ")"
	}
	return out
}
