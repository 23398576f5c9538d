package server_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// Slow and half-open clients are disconnected by the server's own
// timeouts; they do not pin goroutines, and they do not cut a stream.
func TestSlowClientsAreDisconnectedAndStreamsAreNot(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 100*time.Millisecond)
	timeouts := server.Timeouts{ReadHeader: 500 * time.Millisecond, Body: 500 * time.Millisecond, Idle: 500 * time.Millisecond}
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Timeouts: timeouts})
	_, key := env.IssueKey(t, env.Namespace(t), "slow")
	addr := strings.TrimPrefix(gw.URL, "http://")
	baseline := runtime.NumGoroutine()

	dial := func(request string) net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if _, err := io.WriteString(c, request); err != nil {
			t.Fatal(err)
		}
		return c
	}
	const n = 40
	var conns []net.Conn
	for i := 0; i < n; i++ {
		// Headers that never finish (slowloris).
		conns = append(conns, dial("POST /gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+key.Reveal()+"\r\n"))
		// A body that never finishes, after valid headers.
		conns = append(conns, dial("POST /gateway/openai/v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+key.Reveal()+
			"\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":"))
		// A finished request on a keep-alive connection that then idles.
		conns = append(conns, dial("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	}
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Errorf("connection %d was not closed by the server within 15s: %v", i, err)
		}
	}
	// Generous deadlines: with 500 ms server timeouts the connections close
	// within a second or so, but a loaded CI machine can be slow.
	testenv.Eventually(t, 15*time.Second, func() error {
		if g := runtime.NumGoroutine(); g > baseline+10 {
			return fmt.Errorf("%d goroutines, baseline %d: slow clients pinned goroutines", g, baseline)
		}
		return nil
	})

	// A stream that lasts far longer than every timeout above still completes.
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"`+strings.Repeat("w ", 20)+`"}]}`))
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	done := false
	for s := bufio.NewScanner(resp.Body); s.Scan(); {
		done = done || strings.Contains(s.Text(), "[DONE]")
	}
	if !done {
		t.Errorf("a %v stream was cut before its end", time.Since(start).Round(time.Millisecond))
	}
}
