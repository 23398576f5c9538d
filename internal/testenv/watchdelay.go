package testenv

import (
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/client-go/rest"
)

// WatchDelay slows down or stalls the watches of the clients made from
// the config DelayWatches returns (a gateway's: of APIKeys and hash
// Secrets): what a replica whose watches of the API server lag or hang
// sees. Everything else those clients do (lists, reads, writes, its Lease)
// goes through as usual.
type WatchDelay struct {
	mu      sync.Mutex
	delay   time.Duration
	stalled chan struct{} // non-nil while stalled; closed by Resume
}

// DelayWatches returns a copy of cfg whose watches d controls
// (no delay until told).
func DelayWatches(cfg *rest.Config) (*rest.Config, *WatchDelay) {
	d := &WatchDelay{}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripperFunc(func(req *http.Request) (*http.Response, error) {
			resp, err := rt.RoundTrip(req)
			if err == nil && req.URL.Query().Get("watch") == "true" {
				resp.Body = &delayedBody{ReadCloser: resp.Body, d: d, closed: make(chan struct{})}
			}
			return resp, err
		})
	})
	return cfg, d
}

// Delay holds every event of the watches for delay after it arrives.
func (d *WatchDelay) Delay(delay time.Duration) {
	d.mu.Lock()
	d.delay = delay
	d.mu.Unlock()
}

// Stall holds every event of the watches until Resume.
func (d *WatchDelay) Stall() {
	d.mu.Lock()
	if d.stalled == nil {
		d.stalled = make(chan struct{})
	}
	d.mu.Unlock()
}

// Resume lets the events held by Stall through.
func (d *WatchDelay) Resume() {
	d.mu.Lock()
	if d.stalled != nil {
		close(d.stalled)
		d.stalled = nil
	}
	d.mu.Unlock()
}

// hold waits as d says, or until closed.
func (d *WatchDelay) hold(closed <-chan struct{}) {
	d.mu.Lock()
	delay, stalled := d.delay, d.stalled
	d.mu.Unlock()
	if stalled != nil {
		select {
		case <-stalled:
		case <-closed:
		}
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-closed:
		}
	}
}

type delayedBody struct {
	io.ReadCloser
	d      *WatchDelay
	closed chan struct{}
	once   sync.Once
}

// Read reads what has arrived, then holds it before handing it on.
func (b *delayedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.d.hold(b.closed)
	}
	return n, err
}

func (b *delayedBody) Close() error {
	b.once.Do(func() { close(b.closed) })
	return b.ReadCloser.Close()
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }
