package server_test

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/auth"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

// postFrom sends the docs' request with key, as the client at clientAddr
// behind a trusted proxy (the test's own loopback connection) would arrive.
func postFrom(url, key, clientAddr string) int {
	req, _ := http.NewRequest(http.MethodPost, url+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	if clientAddr != "" {
		req.Header.Set("X-Forwarded-For", clientAddr)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// Failure limits must never lock out a good key: not the owner's, when a
// stranger who knows its prefix sends wrong secrets from any number of
// addresses, and not a neighbour's, when a bad client shares an address
// with them (one ingress in front of everyone).
func TestFailureLimitsNeverLockOutAGoodKey(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	ns := env.Namespace(t)
	_, victim := env.IssueKey(t, ns, "victim")
	_, neighbour := env.IssueKey(t, ns, "neighbour")
	var others []keys.Key
	for i := range 6 {
		_, k := env.IssueKey(t, ns, fmt.Sprintf("other-%d", i))
		others = append(others, k)
	}
	// Each case gets a fresh replica: one that has verified no key yet,
	// as after a rollout.
	fresh := func(trusted ...string) *gateway {
		o := auth.Options{RefusalDelay: -1}
		for _, p := range trusted {
			o.TrustedProxies = append(o.TrustedProxies, netip.MustParsePrefix(p))
		}
		return startGateway(t, server.Options{Providers: providersFor(t, up, up), Auth: o})
	}

	t.Run("a stranger from many addresses cannot spend the owner's verifications", func(t *testing.T) {
		gw := fresh("127.0.0.1/32")
		refused := 0
		for i := range 60 {
			if status := postFrom(gw.URL, sameIDOtherSecret(t, victim).Reveal(), fmt.Sprintf("203.0.113.%d", i+1)); status != http.StatusUnauthorized {
				refused++
			}
		}
		if refused > 0 {
			t.Errorf("%d of 60 wrong secrets were answered with something other than 401", refused)
		}
		if status := postFrom(gw.URL, victim.Reveal(), "198.51.100.7"); status != http.StatusOK {
			t.Fatalf("the owner's correct key after the stranger's attempts: %d, want 200", status)
		}
		if runs := counter(t, gw, "codevector_gateway_argon2_verifications_total"); runs > 2 {
			t.Errorf("%v argon2 runs for 60 wrong secrets and one good one, want about 1", runs)
		}
	})

	t.Run("a bad client behind a shared address does not lock out its neighbours", func(t *testing.T) {
		gw := fresh() // no trusted proxy: everyone is 127.0.0.1
		for _, k := range others {
			for range 4 {
				postFrom(gw.URL, sameIDOtherSecret(t, k).Reveal(), "")
			}
		}
		if status := postFrom(gw.URL, neighbour.Reveal(), ""); status != http.StatusOK {
			t.Fatalf("a neighbour's new key after 24 wrong secrets over 6 key IDs from the same address: %d, want 200", status)
		}
	})

	t.Run("behind trusted proxies each client is itself", func(t *testing.T) {
		gw := fresh("127.0.0.1/32")
		// The forged left entry is ignored: the client is the proxy's view.
		for range 30 {
			postFrom(gw.URL, sameIDOtherSecret(t, others[0]).Reveal(), "198.51.100.66, 203.0.113.200")
		}
		if status := postFrom(gw.URL, others[1].Reveal(), "203.0.113.201"); status != http.StatusOK {
			t.Fatalf("another client's key: %d, want 200", status)
		}
	})
}

// A key ID that exists and one that does not are refused in the same
// time, so refusals do not tell a stranger which prefixes are live.
func TestUnknownAndKnownKeyIDsAreRefusedInTheSameTime(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Auth: auth.Options{RefusalDelay: -1}})
	_, known := env.IssueKey(t, env.Namespace(t), "known")
	unknownKey := func() keys.Key {
		k, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		return k
	}

	// Interleaved, so drift in the machine's load hits both alike.
	const samples = 1000
	var tKnown, tUnknown []time.Duration
	for i := range 2 * samples {
		k := unknownKey()
		if i%2 == 0 {
			k = sameIDOtherSecret(t, known)
		}
		start := time.Now()
		if status := postFrom(gw.URL, k.Reveal(), ""); status != http.StatusUnauthorized {
			t.Fatalf("sample %d: %d, want 401", i, status)
		}
		if d := time.Since(start); i%2 == 0 {
			tKnown = append(tKnown, d)
		} else {
			tUnknown = append(tUnknown, d)
		}
	}
	q := func(d []time.Duration, p float64) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[int(p*float64(len(s)-1))]
	}
	medianGap := q(tKnown, 0.5) - q(tUnknown, 0.5)
	noise := min(q(tKnown, 0.75)-q(tKnown, 0.25), q(tUnknown, 0.75)-q(tUnknown, 0.25))
	t.Logf("known key ID: p25 %v p50 %v p75 %v; unknown: p25 %v p50 %v p75 %v; median gap %v, interquartile range %v",
		q(tKnown, 0.25), q(tKnown, 0.5), q(tKnown, 0.75), q(tUnknown, 0.25), q(tUnknown, 0.5), q(tUnknown, 0.75), medianGap, noise)
	if medianGap.Abs() > noise {
		t.Errorf("the medians differ by %v, more than the noise (%v): a refusal tells whether a key ID exists", medianGap, noise)
	}
}
