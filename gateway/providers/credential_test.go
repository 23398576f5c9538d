package providers

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestCredentialFileRotation(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	writeKey := func(content string, mtime time.Time) {
		t.Helper()
		if err := os.WriteFile(keyFile, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(keyFile, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	writeKey("first\n", base)

	ps, err := ParseProviders([]byte("providers:\n  p:\n    baseURL: https://p\n    credential: {file: "+keyFile+"}\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	c := ps.Get("p").Credential
	now := base
	c.now = func() time.Time { return now }
	value := func() string {
		t.Helper()
		v, err := c.HeaderValues()
		if err != nil {
			t.Logf("headerValues reported: %v", err)
		}
		return v[0]
	}

	if got := value(); got != "Bearer first" {
		t.Fatalf("initial value %q", got)
	}

	writeKey("second", base.Add(time.Minute))
	now = now.Add(credentialCheckInterval)
	if got := value(); got != "Bearer second" {
		t.Fatalf("after rotation, first check: %q, want Bearer second", got)
	}

	// Within the check interval the file is not looked at.
	writeKey("third", base.Add(2*time.Minute))
	now = now.Add(credentialCheckInterval / 2)
	if got := value(); got != "Bearer second" {
		t.Fatalf("within the interval: %q, want Bearer second", got)
	}
	now = now.Add(credentialCheckInterval)
	if got := value(); got != "Bearer third" {
		t.Fatalf("after the interval: %q, want Bearer third", got)
	}

	// A failed re-read keeps the last good value and is reported once.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	now = now.Add(credentialCheckInterval)
	v, err := c.HeaderValues()
	if v[0] != "Bearer third" || err == nil {
		t.Fatalf("file removed: %q, %v; want Bearer third and an error", v[0], err)
	}
	now = now.Add(credentialCheckInterval)
	if v, err := c.HeaderValues(); v[0] != "Bearer third" || err != nil {
		t.Fatalf("file still removed: %q, %v; want Bearer third and no repeated error", v[0], err)
	}
	writeKey("fourth", base.Add(3*time.Minute))
	now = now.Add(credentialCheckInterval)
	if got := value(); got != "Bearer fourth" {
		t.Fatalf("file back: %q, want Bearer fourth", got)
	}
}
