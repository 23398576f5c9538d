package testenv

import (
	"net"
	"net/url"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
)

// StallProxy forwards TCP connections (to the API server, in the tests that
// use it) and can stall
// them all: paused, it keeps every connection open but passes no byte
// either way (new connections are held too), as a NAT that dropped its
// state does. Nothing is closed, so the replica behind it sees no error
// until its own health checks give up: a silent partition.
type StallProxy struct {
	ln     net.Listener
	target string
	done   chan struct{}

	mu     sync.Mutex
	open   chan struct{} // closed while not paused
	paused bool
	conns  []net.Conn
}

// NewStallProxy listens on loopback and forwards to target until the test
// ends.
func NewStallProxy(t testing.TB, target string) *StallProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	open := make(chan struct{})
	close(open)
	p := &StallProxy{ln: ln, target: target, done: make(chan struct{}), open: open}
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *StallProxy) Addr() string { return p.ln.Addr().String() }

func (p *StallProxy) gate() <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open
}

func (p *StallProxy) Pause() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.paused {
		p.paused, p.open = true, make(chan struct{})
	}
}

func (p *StallProxy) Resume() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.paused {
		p.paused = false
		close(p.open)
	}
}

func (p *StallProxy) wait() bool {
	select {
	case <-p.gate():
		return true
	case <-p.done:
		return false
	}
}

func (p *StallProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		c.Close()
		return false
	default:
	}
	// Forget closed connections now and then, so a long run does not
	// hold every connection it ever proxied.
	if len(p.conns) > 256 {
		p.conns = p.conns[len(p.conns)-128:]
	}
	p.conns = append(p.conns, c)
	return true
}

func (p *StallProxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			return
		}
		go func() {
			if !p.wait() {
				c.Close()
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				return
			}
			if !p.track(up) {
				c.Close()
				return
			}
			go p.pipe(up, c)
			p.pipe(c, up)
		}()
	}
}

func (p *StallProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *StallProxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.done:
		return
	default:
	}
	close(p.done)
	if p.paused {
		close(p.open)
	}
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// Config is cfg with its host replaced by the proxy, so that a client
// built from it reaches the API server through the proxy (TLS still
// verifies the API server's own name).
func (p *StallProxy) Config(t testing.TB, cfg *rest.Config) *rest.Config {
	t.Helper()
	cfg = rest.CopyConfig(cfg)
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLSClientConfig.ServerName == "" {
		cfg.TLSClientConfig.ServerName = u.Hostname()
	}
	u.Host = p.Addr()
	cfg.Host = u.String()
	return cfg
}
