package auth

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

// BenchmarkMiddlewareVerifiedKey is the authentication cost every request
// pays once its key is in the verified cache.
func BenchmarkMiddlewareVerifiedKey(b *testing.B) {
	a, _, k, _ := fixture(b, testingclock.NewFakeClock(time.Now()))
	h := a.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodPost, "/gateway/openai/v1/chat/completions", nil)
	req.Header.Set("Authorization", "Bearer "+k.Reveal())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req) // verify once
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
}
