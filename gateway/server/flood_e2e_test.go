package server_test

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

// A flood of wrong secrets for one real key ID, from many connections at
// once, must not push argon2 work past its bounds nor starve a good key.
func TestFloodOfWrongSecretsIsBoundedAndDoesNotStarveGoodKeys(t *testing.T) {
	env.StartManager(t, manager.Options{Argon2: keys.DefaultParams})
	up := newUpstream(t, 0)
	const concurrency = 2
	// A short tarpit delay keeps the test quick; the tarpit still engages.
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Auth: auth.Options{Argon2Concurrency: concurrency, RefusalDelay: 20 * time.Millisecond}})
	ns := env.Namespace(t)
	_, victim := env.IssueKey(t, ns, "victim")
	_, good := env.IssueKey(t, ns, "good")
	// The good key is verified once, before the flood.
	if status, _, _ := chat(t, gw.URL, good.Reveal()); status != http.StatusOK {
		t.Fatalf("good key: %d", status)
	}
	argon2Before := counter(t, gw, "codevector_gateway_argon2_verifications_total")

	// Sample argon2 in flight while the flood runs.
	stop := make(chan struct{})
	var peakInFlight atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			if v := int64(gauge(t, gw, "codevector_gateway_argon2_in_flight")); v > peakInFlight.Load() {
				peakInFlight.Store(v)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()

	const attackers, perAttacker = 32, 25
	var wg sync.WaitGroup
	var statuses sync.Map
	for range attackers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range perAttacker {
				forged := sameIDOtherSecret(t, victim)
				status := post(gw.URL, forged.Reveal())
				n, _ := statuses.LoadOrStore(status, new(atomic.Int64))
				n.(*atomic.Int64).Add(1)
			}
		}()
	}
	// Meanwhile the good key keeps working, quickly.
	var worst time.Duration
	goodDone := make(chan struct{})
	go func() {
		defer close(goodDone)
		for i := 0; i < 50; i++ {
			start := time.Now()
			if status := post(gw.URL, good.Reveal()); status != http.StatusOK {
				t.Errorf("good key refused during the flood: %d", status)
			}
			worst = max(worst, time.Since(start))
		}
	}()
	wg.Wait()
	<-goodDone
	close(stop)

	verifications := counter(t, gw, "codevector_gateway_argon2_verifications_total") - argon2Before
	statuses.Range(func(k, v any) bool {
		t.Logf("flood: %d responses with status %d", v.(*atomic.Int64).Load(), k)
		return true
	})
	t.Logf("flood of %d wrong secrets: %v argon2 runs, peak %d in flight; good key worst latency %v", attackers*perAttacker, verifications, peakInFlight.Load(), worst)
	// The quick check turns away all but about one in 65,536 wrong
	// secrets before argon2; the per-key-ID bucket (5, and one more per
	// 10s) bounds the rest.
	if verifications > 2 {
		t.Errorf("%v argon2 verifications for %d wrong secrets, want about none (the quick check stops them)", verifications, attackers*perAttacker)
	}
	if peakInFlight.Load() > concurrency {
		t.Errorf("peak argon2 in flight = %d, above the bound %d", peakInFlight.Load(), concurrency)
	}
	if worst > 500*time.Millisecond {
		t.Errorf("good key's worst latency during the flood = %v, want well under 500ms", worst)
	}
	if n, ok := statuses.Load(http.StatusUnauthorized); !ok || n.(*atomic.Int64).Load() < attackers*perAttacker-2 {
		t.Error("the flood's wrong secrets were not refused with 401")
	}
	// 100 refusals are allowed per client, then the tarpit holds them.
	if held := counter(t, gw, "codevector_gateway_tarpit_delayed_total"); held < attackers*perAttacker-150 {
		t.Errorf("the tarpit held %v of %d refusals, want all but the allowance of 100 (and its refill)", held, attackers*perAttacker)
	}
}

func post(url, key string) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func metric(t *testing.T, gw *gateway, name string) *dto.Metric {
	t.Helper()
	families, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name && len(f.GetMetric()) > 0 {
			return f.GetMetric()[0]
		}
	}
	return &dto.Metric{}
}

func counter(t *testing.T, gw *gateway, name string) float64 {
	return metric(t, gw, name).GetCounter().GetValue()
}

// labelledCounter is the counter name{label="value"}, 0 if absent.
func labelledCounter(t *testing.T, gw *gateway, name, label, value string) float64 {
	t.Helper()
	families, err := gw.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func gauge(t *testing.T, gw *gateway, name string) float64 {
	return metric(t, gw, name).GetGauge().GetValue()
}
