package proxy

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"
)

// oneByteReader hands out its data a byte per Read, as a slow client does.
type oneByteReader struct{ data []byte }

func (r *oneByteReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0], r.data = r.data[0], r.data[1:]
	return 1, nil
}

func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	const limit = 100 << 10
	body := bytes.Repeat([]byte("0123456789abcdef"), limit/16)
	for _, tt := range []struct {
		name     string
		size     int
		declared bool
		tooLarge bool
	}{
		{"empty, unknown length", 0, false, false},
		{"small, declared", 80, true, false},
		{"past the first buffer, declared", 3 * initialBodyBuffer / 2, true, false},
		{"at the limit, declared", limit, true, false},
		{"at the limit, unknown length", limit, false, false},
		{"over the limit, unknown length", limit + 1, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sent := append(body, 'x')[:tt.size]
			r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(&oneByteReader{data: sent}))
			r.ContentLength = -1
			if tt.declared {
				r.ContentLength = int64(tt.size)
			}
			got, err := readBody(r, limit)
			var tooLarge *http.MaxBytesError
			if tt.tooLarge {
				if !errors.As(err, &tooLarge) {
					t.Fatalf("err = %v, want MaxBytesError", err)
				}
				return
			}
			if err != nil || !bytes.Equal(got, sent) {
				t.Fatalf("read %d bytes, %v; want the %d sent", len(got), err, len(sent))
			}
		})
	}
}

// A declared length is not allocated before the bytes come: a request that
// announces 10 MiB and sends 20 bytes costs the first buffer only.
func TestReadBodyDoesNotTrustContentLength(t *testing.T) {
	const runs = 10
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		r := httptest.NewRequest(http.MethodPost, "/", io.NopCloser(bytes.NewReader([]byte(`{"model": "claude-x"`))))
		r.ContentLength = 10 << 20
		_, _ = readBody(r, 10<<20) // the 20 bytes that came
	}
	runtime.ReadMemStats(&after)
	if per := (after.TotalAlloc - before.TotalAlloc) / runs; per > 2*initialBodyBuffer {
		t.Errorf("a stalled 10 MiB declaration allocates %d bytes, want at most %d", per, 2*initialBodyBuffer)
	}
}
