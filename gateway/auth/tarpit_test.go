package auth

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"k8s.io/utils/clock"

	"github.com/codevector/codevector/keys"
)

// sendFrom serves one request from addr and says how long it took. Run in
// a synctest bubble, the time is the bubble's: exactly the tarpit's delay
// when it held the request, exactly zero when nothing waited.
func sendFrom(h http.Handler, addr, key string) (*httptest.ResponseRecorder, time.Duration) {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	r.RemoteAddr = addr
	if key != "" {
		r.Header.Set("Authorization", "Bearer "+key)
	}
	w := httptest.NewRecorder()
	start := time.Now()
	h.ServeHTTP(w, r)
	return w, time.Since(start)
}

// Once a client has used up its refusals, the next are answered late; a
// good key from the same address is never slowed, and other addresses
// are not affected.
func TestTarpitHoldsRefusalsOfAClientThatKeepsFailing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ix, good, _ := fixture(t, clock.RealClock{})
		const delay = 200 * time.Millisecond
		a := New(ix, Options{RefusalBurst: 3, RefusalDelay: delay})
		h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		bad, _ := keys.Generate()

		for i := range 3 {
			if w, took := sendFrom(h, "192.0.2.1:1000", bad.Reveal()); w.Code != http.StatusUnauthorized || took != 0 {
				t.Fatalf("refusal %d within the allowance: %d after %v, want 401 at once", i+1, w.Code, took)
			}
		}
		if w, took := sendFrom(h, "192.0.2.1:1001", ""); w.Code != http.StatusUnauthorized || took < delay/2 || took >= delay*3/2 {
			t.Errorf("refusal past the allowance (no key at all): %d after %v, want 401 after %v give or take half", w.Code, took, delay)
		}
		if w, took := sendFrom(h, "192.0.2.1:1002", good.Reveal()); w.Code != http.StatusOK || took != 0 {
			t.Errorf("good key from the tarpitted address: %d after %v, want 200 at once", w.Code, took)
		}
		if w, took := sendFrom(h, "192.0.2.2:1000", bad.Reveal()); w.Code != http.StatusUnauthorized || took != 0 {
			t.Errorf("another address: %d after %v, want 401 at once", w.Code, took)
		}
		// The allowance refills, one refusal per RefusalRefill (100 ms by
		// default), up to the burst.
		time.Sleep(time.Second)
		for i := range 3 {
			if w, took := sendFrom(h, "192.0.2.1:1003", bad.Reveal()); w.Code != http.StatusUnauthorized || took != 0 {
				t.Errorf("refusal %d after a refill: %d after %v, want 401 at once", i+1, w.Code, took)
			}
		}
		if _, took := sendFrom(h, "192.0.2.1:1004", bad.Reveal()); took < delay/2 || took >= delay*3/2 {
			t.Errorf("with the refill spent: answered after %v, want %v give or take half", took, delay)
		}
	})
}

// The tarpit holds at most MaxHeldRefusals; past that it answers at once
// and closes the connection.
func TestTarpitOverflowClosesTheConnection(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		_, ix, _, _ := fixture(t, clock.RealClock{})
		a := New(ix, Options{RefusalBurst: 1, RefusalDelay: time.Second, MaxHeldRefusals: 2})
		h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
		sendFrom(h, "192.0.2.1:1", "") // the allowance

		var wg sync.WaitGroup
		for range 2 {
			wg.Go(func() { sendFrom(h, "192.0.2.1:1", "") }) // held
		}
		synctest.Wait() // both are waiting out their delay
		if held := len(a.tarpit.held); held != 2 {
			t.Fatalf("%d refusals held, want 2", held)
		}
		w, took := sendFrom(h, "192.0.2.1:1", "")
		if took != 0 || w.Header().Get("Connection") != "close" || w.Code != http.StatusUnauthorized {
			t.Errorf("with the tarpit full: %d after %v, Connection %q; want 401 at once with Connection: close", w.Code, took, w.Header().Get("Connection"))
		}
		wg.Wait()
	})
}

func TestClientAddressGroupsIPv6By64(t *testing.T) {
	for addr, want := range map[string]string{
		"192.0.2.7:443":               "192.0.2.7",
		"[2001:db8:1:2:aaaa::1]:443":  "2001:db8:1:2::/64",
		"[2001:db8:1:2:bbbb::9]:8080": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.7]:443":      "192.0.2.7",
		"not an address":              "not an address",
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = addr
		r.Header.Set("X-Forwarded-For", "198.51.100.1") // no trusted proxy: ignored
		if got := New(nil, Options{}).clientAddress(r); got != want {
			t.Errorf("clientAddress(%q) = %q, want %q", addr, got, want)
		}
	}
}

// Behind trusted proxies the client is the rightmost X-Forwarded-For hop
// that is not one of them; what the client wrote itself counts for nothing.
func TestClientAddressBehindTrustedProxies(t *testing.T) {
	a := New(nil, Options{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	for _, tc := range []struct {
		peer string
		xff  []string
		want string
	}{
		{"10.0.0.5:1", []string{"203.0.113.9"}, "203.0.113.9"},
		{"10.0.0.5:1", []string{"198.51.100.66, 203.0.113.9"}, "203.0.113.9"},             // a forged left entry
		{"10.0.0.5:1", []string{"203.0.113.9, 10.1.2.3"}, "203.0.113.9"},                  // two proxies
		{"10.0.0.5:1", []string{"198.51.100.66", "203.0.113.9, 10.1.2.3"}, "203.0.113.9"}, // repeated header
		{"10.0.0.5:1", []string{"2001:db8:1:2::7"}, "2001:db8:1:2::/64"},
		{"10.0.0.5:1", []string{"garbage, 10.1.2.3"}, "10.1.2.3"},
		{"10.0.0.5:1", nil, "10.0.0.5"},
		{"192.0.2.7:1", []string{"203.0.113.9"}, "192.0.2.7"}, // not a trusted peer
	} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = tc.peer
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := a.clientAddress(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: client %q, want %q", tc.peer, tc.xff, got, tc.want)
		}
	}
}
