package proxy

import (
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// responseRecorder remembers the status sent. Flush, Hijack and deadlines
// reach the real writer through Unwrap (http.ResponseController), which is
// how ReverseProxy flushes and upgrades.
type responseRecorder struct {
	http.ResponseWriter
	status int
}

func (w *responseRecorder) WriteHeader(code int) {
	// 1xx responses other than 101 are informational; the final status
	// comes later.
	if w.status == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *responseRecorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// splitPath splits /gateway/{provider}/{rest...} into the provider name and
// rest ("" or starting with "/").
func splitPath(p string) (name, rest string, ok bool) {
	const prefix = "/gateway/"
	if !strings.HasPrefix(p, prefix) {
		return "", "", false
	}
	p = p[len(prefix):]
	if i := strings.IndexByte(p, '/'); i >= 0 {
		name, rest = p[:i], p[i:]
	} else {
		name = p
	}
	return name, rest, name != ""
}

// hasDotSegment reports "." or ".." segments, which an upstream would
// resolve to escape a base URL path such as https://host/openai/.
func hasDotSegment(p string) bool {
	for p != "" {
		seg := p
		if i := strings.IndexByte(p, '/'); i >= 0 {
			seg, p = p[:i], p[i+1:]
		} else {
			p = ""
		}
		if seg == "." || seg == ".." {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// initialBodyBuffer is where a body read for model routing starts; the
// buffer grows as bytes arrive.
const initialBodyBuffer = 16 << 10

// readBody reads the whole body for model routing, as it arrives: the
// buffer grows with the bytes received (doubling), never to a declared
// length up front, so a client that announces the largest body and stalls
// costs at most initialBodyBuffer. A declared length was checked against
// limit already, and the server delivers no more than it; a body of unknown
// length is cut at limit.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	// Room for one byte more than may come: a full buffer then means a
	// body over the limit, and the last Read always has space to see EOF.
	ceiling := limit + 1
	if r.ContentLength >= 0 {
		ceiling = r.ContentLength + 1
	}
	buf := make([]byte, 0, min(ceiling, initialBodyBuffer))
	for {
		if len(buf) == cap(buf) {
			if int64(len(buf)) >= ceiling {
				return nil, &http.MaxBytesError{Limit: limit}
			}
			buf = slices.Grow(buf, int(min(int64(cap(buf)), ceiling-int64(len(buf)))))
		}
		n, err := r.Body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if int64(len(buf)) > limit {
		return nil, &http.MaxBytesError{Limit: limit}
	}
	return buf, nil
}

// bufferedBody is a request body read for model routing.
type bufferedBody struct {
	*bytes.Reader
	data []byte
}

func (b *bufferedBody) Close() error { return nil }

func (b *bufferedBody) replay() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}

// bufferPool recycles ReverseProxy's 32 KiB copy buffers, which it would
// otherwise allocate for every response.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.pool.Get().(*[]byte); ok {
		return *buf
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }
