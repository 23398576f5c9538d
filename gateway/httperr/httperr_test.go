package httperr

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

func TestWrite(t *testing.T) {
	tests := []struct {
		name     string
		typ      string
		code     string
		msg      string
		wantBody string
	}{
		{
			name:     "with code",
			typ:      TypeInvalidRequest,
			code:     "invalid_api_key",
			msg:      "Invalid API key.",
			wantBody: `{"error":{"message":"Invalid API key.","type":"invalid_request_error","code":"invalid_api_key"}}` + "\n",
		},
		{
			name:     "empty code is null",
			typ:      TypeUpstream,
			msg:      "upstream unavailable",
			wantBody: `{"error":{"message":"upstream unavailable","type":"upstream_error","code":null}}` + "\n",
		},
		{
			name:     "message is escaped",
			typ:      TypeAPI,
			code:     "x",
			msg:      `quote " and <script>`,
			wantBody: `{"error":{"message":"quote \" and \u003cscript\u003e","type":"api_error","code":"x"}}` + "\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Content-Encoding", "gzip")
			Write(rec, http.StatusTeapot, tt.typ, tt.code, tt.msg)

			if rec.Code != http.StatusTeapot {
				t.Errorf("status = %d, want %d", rec.Code, http.StatusTeapot)
			}
			if got := rec.Body.String(); got != tt.wantBody {
				t.Errorf("body = %s, want %s", got, tt.wantBody)
			}
			h := rec.Header()
			if got := h.Get("Content-Type"); got != "application/json; charset=utf-8" {
				t.Errorf("Content-Type = %q", got)
			}
			if got := h.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options = %q", got)
			}
			if got := h.Get("Content-Length"); got != strconv.Itoa(len(tt.wantBody)) {
				t.Errorf("Content-Length = %q, want %d", got, len(tt.wantBody))
			}
			if got := h.Get("Content-Encoding"); got != "" {
				t.Errorf("stale Content-Encoding %q kept", got)
			}
			var decoded map[string]map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &decoded); err != nil {
				t.Fatalf("body is not JSON: %v", err)
			}
			if decoded["error"]["message"] != tt.msg {
				t.Errorf("decoded message = %v, want %q", decoded["error"]["message"], tt.msg)
			}
		})
	}
}
