package proxy

import (
	"bytes"
	"io"
	"net/http"
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

func isJSON(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	mediaType, _, _ := strings.Cut(contentType[0], ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// readBody reads a body already known to be at most limit bytes if its
// length is declared, and enforces limit otherwise.
func readBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	if r.ContentLength >= 0 {
		buf := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, err
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
