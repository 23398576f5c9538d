package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingRunner notes when it starts and stops, and fails when told.
type recordingRunner struct {
	name   string
	events *events
	fail   <-chan error // nil: runs until its context ends
}

type events struct {
	mu   sync.Mutex
	list []string
}

func (e *events) add(s string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.list = append(e.list, s)
}

func (e *events) stops() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, s := range e.list {
		if name, ok := strings.CutPrefix(s, "stop "); ok {
			out = append(out, name)
		}
	}
	return out
}

func (r *recordingRunner) Name() string { return r.name }

func (r *recordingRunner) Start(ctx context.Context) error {
	r.events.add("start " + r.name)
	defer r.events.add("stop " + r.name)
	select {
	case <-ctx.Done():
		return nil
	case err := <-r.fail:
		return err
	}
}

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// The parts stop in the reverse of their order, each once the ones after
// it have stopped, whether Run's context ended or a part failed; a failure
// is returned with the part's name.
func TestRunAllStopsInReverse(t *testing.T) {
	for _, tt := range []struct {
		name    string
		failing string
		wantErr string
	}{
		{name: "context ends"},
		{name: "a part fails", failing: "b", wantErr: "b: boom"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev := &events{}
			fail := make(chan error, 1)
			var rs []runner
			for _, name := range []string{"a", "b", "c"} {
				r := &recordingRunner{name: name, events: ev}
				if name == tt.failing {
					r.fail = fail
				}
				rs = append(rs, r)
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- runAll(ctx, discard, rs) }()
			if tt.failing != "" {
				fail <- errors.New("boom")
			} else {
				cancel()
			}
			select {
			case err := <-done:
				if got := errString(err); got != tt.wantErr {
					t.Fatalf("runAll = %q, want %q", got, tt.wantErr)
				}
			case <-time.After(time.Minute):
				t.Fatal("runAll did not return")
			}
			want := []string{"c", "b", "a"}
			if tt.failing == "b" {
				// b stopped by failing, before it was told to.
				want = []string{"b", "c", "a"}
			}
			if got := ev.stops(); !slices.Equal(got, want) {
				t.Errorf("stopped %v, want %v", got, want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// A listener drains its requests on a clean stop, and closes them at once
// when another part failed.
func TestHTTPRunnerDrainsOnlyOnCleanStop(t *testing.T) {
	for _, tt := range []struct {
		name      string
		cause     error
		wantDrain bool
	}{
		{name: "clean stop", cause: errStopping, wantDrain: true},
		{name: "another part failed", cause: errors.New("quota engine: boom"), wantDrain: false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			inHandler, release := make(chan struct{}), make(chan struct{})
			srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(inHandler)
				<-release
				io.WriteString(w, "done")
			})}
			h := &httpRunner{name: "public listener", server: srv, listener: ln, drain: time.Minute, log: discard, listening: "Listening"}
			ctx, stop := context.WithCancelCause(context.Background())
			stopped := make(chan error, 1)
			go func() { stopped <- h.Start(ctx) }()

			answered := make(chan error, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String())
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				answered <- err
			}()
			<-inHandler
			stop(tt.cause)
			var stopErr error
			if tt.wantDrain {
				// Still draining: Start waits for the request.
				select {
				case err := <-stopped:
					t.Fatalf("Start returned %v with a request in flight", err)
				case <-time.After(100 * time.Millisecond):
				}
				close(release)
				stopErr = <-stopped
			} else {
				// Closed with the request in flight.
				stopErr = <-stopped
				close(release)
			}
			if stopErr != nil {
				t.Errorf("Start = %v", stopErr)
			}
			if err := <-answered; (err == nil) != tt.wantDrain {
				t.Errorf("request: %v, want answered %v", err, tt.wantDrain)
			}
		})
	}
}
