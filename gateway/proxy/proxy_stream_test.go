package proxy

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestProxyStreamsServerSentEvents(t *testing.T) {
	const events = 5
	const gap = 100 * time.Millisecond
	sse := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := range events {
			if i > 0 {
				time.Sleep(gap)
			}
			fmt.Fprintf(w, "data: {\"n\":%d}\n\n", i)
			if err := rc.Flush(); err != nil {
				return
			}
		}
	})
	// A server-wide WriteTimeout (meant for the console) shorter than the
	// stream must not cut it.
	front := newFront(t, testProviders(t, sse.URL, sse.URL), Options{}, func(s *http.Server) {
		s.WriteTimeout = gap
	})

	req := newRequest(t, http.MethodPost, front.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","stream":true}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type = %q", ct)
	}

	var arrivals []time.Time
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if line := lines.Text(); strings.HasPrefix(line, "data: ") {
			if want := fmt.Sprintf(`data: {"n":%d}`, len(arrivals)); line != want {
				t.Errorf("event %d = %q, want %q", len(arrivals), line, want)
			}
			arrivals = append(arrivals, time.Now())
		}
	}
	if err := lines.Err(); err != nil {
		t.Fatal(err)
	}
	if len(arrivals) != events {
		t.Fatalf("got %d events, want %d", len(arrivals), events)
	}
	// Sent 400ms apart end to end; buffered, they would arrive together.
	if spread := arrivals[events-1].Sub(arrivals[0]); spread < (events-1)*gap*6/10 {
		t.Errorf("events arrived within %v, want them spread over about %v", spread, (events-1)*gap)
	}
	for i := 1; i < events; i++ {
		if d := arrivals[i].Sub(arrivals[i-1]); d < gap/4 {
			t.Errorf("event %d arrived %v after event %d, want about %v", i, d, i-1, gap)
		}
	}
}

func TestProxyClientCancelCancelsUpstream(t *testing.T) {
	tests := []struct {
		name        string
		sendHeaders bool
	}{
		{"while waiting for response headers", false},
		{"while streaming the body", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := make(chan struct{})
			upstreamDone := make(chan struct{})
			upstream := newFakeUpstream(t, func(w http.ResponseWriter, r *http.Request) {
				defer close(upstreamDone)
				if tt.sendHeaders {
					w.Header().Set("Content-Type", "text/event-stream")
					_, _ = io.WriteString(w, "data: first\n\n")
					_ = http.NewResponseController(w).Flush()
				}
				close(started)
				select {
				case <-r.Context().Done():
				case <-time.After(10 * time.Second):
					t.Error("upstream request context was not cancelled")
				}
			})
			front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{})

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			req := newRequest(t, http.MethodGet, front.URL+"/gateway/anthropic/v1/models", nil).WithContext(ctx)
			clientDone := make(chan struct{})
			go func() {
				defer close(clientDone)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}()

			select {
			case <-started:
			case <-time.After(5 * time.Second):
				t.Fatal("upstream never received the request")
			}
			cancelled := time.Now()
			cancel()
			select {
			case <-upstreamDone:
				if d := time.Since(cancelled); d > time.Second {
					t.Errorf("upstream saw the cancel after %v", d)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("upstream request context not done 5s after the client went away")
			}
			<-clientDone
		})
	}
}
