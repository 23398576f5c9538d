package sealedcookie

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

type session struct {
	User   string   `json:"u"`
	Groups []string `json:"g,omitempty"`
}

var (
	secret = bytes.Repeat([]byte("k"), 32)
	t0     = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
)

func codec(t testing.TB, secret []byte, purpose string, now *time.Time) *Codec {
	t.Helper()
	c, err := New(secret, purpose, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSealOpen(t *testing.T) {
	now := t0
	c := codec(t, secret, "session", &now)
	in := session{User: "alice@example.com", Groups: []string{"codevector:admins"}}
	s, err := c.Seal(in, now.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(s, "alice") {
		t.Error("the sealed value shows the user")
	}
	var out session
	if err := c.Open(s, &out); err != nil || out.User != in.User || len(out.Groups) != 1 {
		t.Fatalf("Open = %+v, %v", out, err)
	}
	// Two seals of the same value differ (random nonce).
	if s2, _ := c.Seal(in, now.Add(time.Hour)); s2 == s {
		t.Error("sealing twice gave the same value")
	}

	// A replica with the same secret opens it: that is how replicas share
	// sessions.
	replica := codec(t, bytes.Clone(secret), "session", &now)
	if err := replica.Open(s, &out); err != nil {
		t.Errorf("a replica with the same secret: %v", err)
	}
	for name, other := range map[string]*Codec{
		"another secret":  codec(t, bytes.Repeat([]byte("x"), 32), "session", &now),
		"another purpose": codec(t, secret, "login", &now),
	} {
		if err := other.Open(s, &out); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s opened it: %v", name, err)
		}
	}

	// Every single-character change is refused.
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range s {
		for _, r := range []byte{alphabet[(strings.IndexByte(alphabet, s[i])+1)%64], '.'} {
			tampered := s[:i] + string(r) + s[i+1:]
			if err := c.Open(tampered, &out); !errors.Is(err, ErrInvalid) {
				t.Fatalf("changing character %d to %q: %v", i, r, err)
			}
		}
	}
	for _, bad := range []string{"", "x", s[:len(s)-1], s + "A", strings.Repeat("A", MaxValue+1)} {
		if err := c.Open(bad, &out); !errors.Is(err, ErrInvalid) {
			t.Errorf("Open(%.20q...) = %v, want ErrInvalid", bad, err)
		}
	}

	// The expiry is inside: at and after it, the value is refused as
	// expired (and told apart from a forgery).
	now = t0.Add(time.Hour)
	out = session{}
	if err := c.Open(s, &out); !errors.Is(err, ErrExpired) || out.User != "" {
		t.Errorf("at expiry: %v, %+v", err, out)
	}
}

func TestNewAndSealLimits(t *testing.T) {
	if _, err := New([]byte("short"), "session", nil); err == nil {
		t.Error("a short secret is accepted")
	}
	if _, err := New(secret, "", nil); err == nil {
		t.Error("an empty purpose is accepted")
	}
	c, _ := New(secret, "session", nil)
	if _, err := c.Seal(session{User: strings.Repeat("g", 4000)}, time.Now().Add(time.Hour)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a value too large for a cookie: %v", err)
	}
}

// FuzzOpen feeds the decoder arbitrary cookie values: it must never panic,
// and must open nothing but what was sealed.
func FuzzOpen(f *testing.F) {
	now := t0
	c := codec(f, secret, "session", &now)
	// Fixed nonces, so that every fuzz worker seals the same seeds.
	c.random = zeros{}
	sealed, err := c.Seal(session{User: "alice@example.com"}, now.Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	expired, _ := c.Seal(session{User: "alice@example.com"}, now.Add(-time.Hour))
	for _, seed := range []string{sealed, expired, "", "AQ", sealed[:40], strings.ToUpper(sealed)} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out session
		err := c.Open(s, &out)
		switch {
		case err == nil && s != sealed:
			t.Fatalf("opened a value nobody sealed: %q -> %+v", s, out)
		case err == nil && out.User != "alice@example.com":
			t.Fatalf("opened the sealed value as %+v", out)
		case err != nil && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrExpired):
			t.Fatalf("unexpected error %v", err)
		case errors.Is(err, ErrExpired) && s != expired:
			t.Fatalf("a value nobody sealed is reported expired, not invalid: %q", s)
		}
	})
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
