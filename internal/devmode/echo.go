package devmode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// EchoUpstream is a stand-in LLM provider that answers OpenAI-shaped chat
// completions (/v1/chat/completions) by echoing the last user message,
// streamed or not, and lists one model (/v1/models). Dev mode points the
// openai provider at it when no real credentials are set, and tests and
// benchmarks use it as a fast upstream. It is never a product feature: dev
// mode says so on start-up.
type EchoUpstream struct {
	// ChunkDelay is the pause between streamed chunks.
	ChunkDelay time.Duration
	seq        atomic.Int64
}

type echoRequest struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

func (h *EchoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions") && r.Method == http.MethodPost:
		h.chat(w, r)
	case strings.HasSuffix(r.URL.Path, "/models"):
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"echo-1","object":"model","created":0,"owned_by":"codevector-dev"}]}`)
	default:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"error":{"message":"the echo stand-in only serves /v1/chat/completions and /v1/models, not %s","type":"invalid_request_error","code":"not_found"}}`, jsonEscape(r.URL.Path))
	}
}

func (h *EchoUpstream) chat(w http.ResponseWriter, r *http.Request) {
	var req echoRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 10<<20)).Decode(&req); err != nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, `{"error":{"message":"request body is not JSON: %s","type":"invalid_request_error","code":null}}`, jsonEscape(err.Error()))
		return
	}
	text := "Echo: " + echoedText(req)
	id := fmt.Sprintf("chatcmpl-echo-%d", h.seq.Add(1))
	created := time.Now().Unix()
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": req.Model,
			"choices": []any{map[string]any{
				"index": 0, "finish_reason": "stop",
				"message": map[string]any{"role": "assistant", "content": text},
			}},
			"usage": map[string]any{"prompt_tokens": 1, "completion_tokens": len(strings.Fields(text)), "total_tokens": 1 + len(strings.Fields(text))},
		})
		return
	}

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	send := func(delta map[string]any, finish any) bool {
		chunk, _ := json.Marshal(map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": req.Model,
			"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
		})
		if _, err := fmt.Fprintf(w, "data: %s\n\n", chunk); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	if !send(map[string]any{"role": "assistant", "content": ""}, nil) {
		return
	}
	for i, word := range strings.SplitAfter(text, " ") {
		if h.ChunkDelay > 0 && i > 0 {
			select {
			case <-time.After(h.ChunkDelay):
			case <-r.Context().Done():
				return
			}
		}
		if !send(map[string]any{"content": word}, nil) {
			return
		}
	}
	send(map[string]any{}, "stop")
	fmt.Fprint(w, "data: [DONE]\n\n")
	if flusher != nil {
		flusher.Flush()
	}
}

// echoedText is the text of the last user message; content may be a
// string or an array of parts.
func echoedText(req echoRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		var s string
		if json.Unmarshal(m.Content, &s) == nil {
			return s
		}
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		if json.Unmarshal(m.Content, &parts) == nil {
			var b strings.Builder
			for _, p := range parts {
				b.WriteString(p.Text)
			}
			return b.String()
		}
	}
	return ""
}

func jsonEscape(s string) string {
	b, _ := json.Marshal(s)
	return string(b[1 : len(b)-1])
}
