package server

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/codevector/codevector/gateway/httperr"
)

// withRecovery turns a panic in a handler into a logged 500 with a JSON
// body, instead of net/http's bare connection reset, and keeps serving.
// http.ErrAbortHandler is how the proxy ends a response on purpose; it is
// passed on.
func withRecovery(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &headerWatch{ResponseWriter: w}
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			log.LogAttrs(r.Context(), slog.LevelError, "Recovered from a panic while serving a request",
				slog.String("path", r.URL.Path), slog.String("requestID", r.Header.Get(requestIDHeader)),
				slog.Any("panic", v), slog.String("stack", string(debug.Stack())))
			if !rec.wrote {
				httperr.Write(w, http.StatusInternalServerError, "api_error", "internal_error",
					"The gateway failed while handling the request. Retry; if it keeps happening, quote the X-Request-Id header to your administrator.")
			}
		}()
		next.ServeHTTP(rec, r)
	})
}

// headerWatch records whether the response's header was sent.
type headerWatch struct {
	http.ResponseWriter
	wrote bool
}

func (h *headerWatch) WriteHeader(code int) { h.wrote = true; h.ResponseWriter.WriteHeader(code) }
func (h *headerWatch) Write(b []byte) (int, error) {
	h.wrote = true
	return h.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach flushing and deadlines
// (streams, the body deadline) through the wrapper.
func (h *headerWatch) Unwrap() http.ResponseWriter { return h.ResponseWriter }
