package server_test

import (
	"bufio"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

func TestStreamArrivesInPiecesAndDisconnectCancelsUpstream(t *testing.T) {
	env.StartManager(t, manager.Options{})
	const gap = 150 * time.Millisecond
	up := newUpstream(t, gap)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	_, key := env.IssueKey(t, env.Namespace(t), "streamer")

	send := func(ctx context.Context, words string) *http.Response {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"`+words+`"}]}`))
		req.Header.Set("Authorization", "Bearer "+key.Reveal())
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			t.Fatalf("stream: status %d, content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp
	}

	// Each event is timed as it arrives at the client.
	resp := send(context.Background(), "one two three four five")
	start := time.Now()
	var arrivals []time.Duration
	lines := bufio.NewScanner(resp.Body)
	for lines.Scan() {
		if strings.HasPrefix(lines.Text(), "data: ") {
			arrivals = append(arrivals, time.Since(start))
		}
	}
	resp.Body.Close()
	// role chunk, "Echo: " and 5 words, finish chunk, [DONE]
	if len(arrivals) < 8 {
		t.Fatalf("got %d events, want at least 8", len(arrivals))
	}
	spread := arrivals[len(arrivals)-1] - arrivals[0]
	if spread < 4*gap {
		t.Errorf("events arrived within %v; the upstream spaced them %v apart, so the gateway buffered them (arrivals %v)", spread, gap, arrivals)
	}
	for i := 2; i < 6; i++ {
		if d := arrivals[i] - arrivals[i-1]; d < gap/2 {
			t.Errorf("event %d arrived %v after event %d; want about %v (arrivals %v)", i, d, i-1, gap, arrivals)
		}
	}

	// Closing the client cancels the upstream request.
	for len(up.done) > 0 {
		<-up.done
	}
	ctx, cancel := context.WithCancel(context.Background())
	resp = send(ctx, strings.Repeat("word ", 200))
	bufio.NewReader(resp.Body).ReadString('\n')
	cancel()
	resp.Body.Close()
	select {
	case err := <-up.done:
		if err == nil {
			t.Error("upstream request completed instead of being cancelled")
		}
	case <-time.After(3 * time.Second):
		t.Error("upstream request still running 3s after the client went away")
	}
}
