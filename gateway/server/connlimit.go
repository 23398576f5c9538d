package server

import (
	"io"
	"net"
	"net/netip"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// limitConnsPerClient wraps ln so that one client address (an IPv6 /64,
// which one host usually holds whole) has at most max connections open at
// once. Past that, a new connection is closed as soon as it is accepted,
// before the server spends a goroutine, a buffer or a read on it: the
// timeouts bound how long each connection lives, this bounds how many one
// client can hold while they run.
//
// Behind a load balancer or ingress every client has the balancer's
// address, so max must then cover all the connections one balancer opens
// to one replica (README: --max-conns-per-client).
func limitConnsPerClient(ln net.Listener, max int, refused prometheus.Counter) net.Listener {
	return &perClientListener{Listener: ln, max: max, refused: refused, open: map[netip.Prefix]int{}}
}

type perClientListener struct {
	net.Listener
	max     int
	refused prometheus.Counter

	mu   sync.Mutex
	open map[netip.Prefix]int
}

// Accept returns the next connection whose client is under its limit.
func (l *perClientListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		client, ok := clientPrefix(c.RemoteAddr())
		if !ok {
			return c, nil // not TCP (a test's pipe): nothing to count by
		}
		if l.acquire(client) {
			return &countedConn{Conn: c, release: func() { l.release(client) }}, nil
		}
		l.refused.Inc()
		_ = c.Close()
	}
}

func (l *perClientListener) acquire(client netip.Prefix) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[client] >= l.max {
		return false
	}
	l.open[client]++
	return true
}

func (l *perClientListener) release(client netip.Prefix) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[client] <= 1 {
		delete(l.open, client)
	} else {
		l.open[client]--
	}
}

// clientPrefix is the address a connection counts against: the IPv4
// address, or the IPv6 /64.
func clientPrefix(a net.Addr) (netip.Prefix, bool) {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return netip.Prefix{}, false
	}
	addr, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	addr = addr.Unmap()
	bits := 32
	if addr.Is6() {
		bits = 64
	}
	p, err := addr.Prefix(bits)
	return p, err == nil
}

// countedConn gives its slot back once, on the first Close (the server
// may close a connection more than once).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite and ReadFrom keep what net/http uses of *net.TCPConn: a
// half-close that lets a client read an error response before the
// connection goes, and sendfile/splice for response bodies.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}
