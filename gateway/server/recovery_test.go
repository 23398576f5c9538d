package server

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEveryRouteGetsARequestIDAndPanicsBecome500(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	h := withRequestID(withRecovery(log, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		case "/late":
			w.WriteHeader(http.StatusOK)
			panic("after the header")
		}
		w.Write([]byte("ok"))
	})))

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	if w.Code != http.StatusOK || w.Header().Get(requestIDHeader) == "" {
		t.Errorf("/healthz: %d, request ID %q", w.Code, w.Header().Get(requestIDHeader))
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/panic", nil))
	id := w.Header().Get(requestIDHeader)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), `"code":"internal_error"`) || id == "" {
		t.Errorf("a panic: %d %s (request ID %q), want a 500 JSON error with an ID", w.Code, w.Body, id)
	}
	if !strings.Contains(logs.String(), "boom") || !strings.Contains(logs.String(), id) {
		t.Errorf("the panic is not logged with its request ID:\n%s", logs.String())
	}

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/late", nil))
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "internal_error") {
		t.Errorf("a panic after the header was sent: %d %s, want the response left as it was", w.Code, w.Body)
	}

	func() {
		defer func() {
			if v := recover(); v == nil || !errors.Is(v.(error), http.ErrAbortHandler) {
				t.Errorf("http.ErrAbortHandler was not passed on: %v", v)
			}
		}()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/abort", nil))
	}()
}
