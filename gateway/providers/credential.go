package providers

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// valuePlaceholder is replaced by the secret in Credential.Format.
const valuePlaceholder = "{value}"

// credentialCheckInterval bounds how often a file credential is stat'ed on
// the request path. A rotated Secret is picked up within this interval; the
// cost is one stat per second per provider, not one per request.
const credentialCheckInterval = time.Second

// Credential is how the gateway authenticates to an upstream. The value
// comes from an env var, read once at load time (changing it needs a
// restart), or from a file, read at load time and re-read when its
// modification time or size changes, so a rotated Kubernetes Secret volume
// takes effect without a restart. If a re-read fails (the file is missing or
// empty for a moment during rotation) the last good value stays in use.
type Credential struct {
	// Header is the canonical name of the header that carries the value;
	// default Authorization.
	Header string
	// Format is the header value with {value} standing for the secret;
	// default "Bearer {value}".
	Format string
	// Env is the env var the secret came from, if any.
	Env string
	// File is the file the secret comes from, if any.
	File string

	// current is the formatted header value as a one-element slice, stored
	// into each outgoing request's header map as is: requests only read it,
	// and sharing it saves an allocation per request.
	current atomic.Pointer[[]string]
	// nextCheck is when (Unix nanoseconds) the file is next stat'ed.
	nextCheck atomic.Int64
	// now is the clock; tests replace it.
	now func() time.Time

	// mu serialises re-reads; requests that find it held use the current
	// value instead of waiting.
	mu      sync.Mutex
	modTime time.Time // of the file when last read; guarded by mu
	size    int64     // of the file when last read; guarded by mu
	lastErr string    // last re-read failure reported; guarded by mu
}

// setValue formats and publishes a new secret. Error messages never contain
// the secret.
func (c *Credential) setValue(secret string) error {
	if !httpguts.ValidHeaderFieldValue(secret) {
		return errors.New("value contains control characters")
	}
	v := []string{strings.ReplaceAll(c.Format, valuePlaceholder, secret)}
	c.current.Store(&v)
	return nil
}

// loadFile reads the credential file and publishes its trimmed content.
// Callers other than the parser hold c.mu.
func (c *Credential) loadFile() error {
	fi, err := os.Stat(c.File)
	if err != nil {
		return fmt.Errorf("reading credential file: %w", err)
	}
	data, err := os.ReadFile(c.File)
	if err != nil {
		return fmt.Errorf("reading credential file: %w", err)
	}
	secret := strings.TrimSpace(string(data))
	if secret == "" {
		return fmt.Errorf("credential file %s is empty", c.File)
	}
	if err := c.setValue(secret); err != nil {
		return fmt.Errorf("credential file %s: %w", c.File, err)
	}
	c.modTime, c.size = fi.ModTime(), fi.Size()
	return nil
}

// HeaderValues returns the formatted header value. For a file credential it
// first re-reads the file if the check interval has passed and the file
// changed; err reports a failed re-read (once per distinct failure, so a
// caller can log it without flooding), in which case the previous value is
// returned.
func (c *Credential) HeaderValues() (v []string, err error) {
	if c.File != "" {
		now := time.Now
		if c.now != nil {
			now = c.now
		}
		t := now()
		if t.UnixNano() >= c.nextCheck.Load() && c.mu.TryLock() {
			err = c.refreshLocked(t)
			c.mu.Unlock()
		}
	}
	return *c.current.Load(), err
}

func (c *Credential) refreshLocked(now time.Time) error {
	c.nextCheck.Store(now.Add(credentialCheckInterval).UnixNano())
	fi, err := os.Stat(c.File)
	if err == nil && fi.ModTime().Equal(c.modTime) && fi.Size() == c.size {
		return nil
	}
	if err == nil {
		err = c.loadFile()
	} else {
		err = fmt.Errorf("reading credential file: %w", err)
	}
	if err == nil {
		c.lastErr = ""
		return nil
	}
	if msg := err.Error(); msg != c.lastErr {
		c.lastErr = msg
		return err
	}
	return nil
}
