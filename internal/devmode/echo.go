package devmode

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"time"
)

// EchoUpstream is a stand-in LLM provider that answers by echoing the last
// user message as "Echo: <message>", in the shapes of the real APIs:
//
//   - OpenAI's chat completions (POST /v1/chat/completions, which
//     Anthropic serves too for OpenAI's SDKs), streamed or not, with n
//     answers, max_tokens or max_completion_tokens honoured (an answer
//     longer than that is cut, finish_reason "length") and the usage chunk
//     of a stream sent only when stream_options.include_usage asks for it;
//     legacy completions and embeddings;
//   - Anthropic's messages (POST /v1/messages), streamed or not, with the
//     required max_tokens honoured (stop_reason "max_tokens") and usage in
//     message_start and message_delta as Anthropic reports it, and
//     count_tokens;
//   - GET /v1/models and /v1/models/{id}, in OpenAI's list shape or, for
//     Kind "anthropic", Anthropic's.
//
// A token is a word: an answer of "Echo: one two" is 3 output tokens, and
// the prompt counts 1 token. Any model name is answered; Models is what
// the listing shows. Dev mode serves one for each provider when no real
// credentials are set, and tests and benchmarks use it as a fast upstream.
// It is never a product feature: dev mode says so on start-up.
type EchoUpstream struct {
	// ChunkDelay is the pause between streamed chunks.
	ChunkDelay time.Duration
	// Kind is "anthropic" for Anthropic's model listing shape; anything
	// else lists models as OpenAI does.
	Kind string
	// Models is what GET /v1/models lists. Empty: one model, echo-1.
	Models []string
	seq    atomic.Int64
}

type echoMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type echoRequest struct {
	Model         string          `json:"model"`
	Stream        bool            `json:"stream"`
	Messages      []echoMessage   `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Input         json.RawMessage `json:"input"`
	N             *int64          `json:"n"`
	MaxTokens     *int64          `json:"max_tokens"`
	MaxCompletion *int64          `json:"max_completion_tokens"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (h *EchoUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	post := r.Method == http.MethodPost
	switch {
	case post && strings.HasSuffix(p, "/chat/completions"):
		h.chat(w, r, false)
	case post && strings.HasSuffix(p, "/completions"):
		h.chat(w, r, true)
	case post && strings.HasSuffix(p, "/messages/count_tokens"):
		writeJSON(w, map[string]any{"input_tokens": 1})
	case post && strings.HasSuffix(p, "/messages"):
		h.messages(w, r)
	case post && strings.HasSuffix(p, "/embeddings"):
		h.embeddings(w, r)
	case r.Method == http.MethodGet && strings.HasSuffix(p, "/models"):
		h.listModels(w)
	case r.Method == http.MethodGet && strings.HasSuffix(p[:max(strings.LastIndexByte(p, '/'), 0)], "/models"):
		h.getModel(w, p[strings.LastIndexByte(p, '/')+1:])
	default:
		h.fail(w, http.StatusNotFound, "not_found_error",
			fmt.Sprintf("the echo stand-in serves chat completions, completions, embeddings, messages and models, not %s %s", r.Method, p))
	}
}

// fail answers an error in the kind's own shape.
func (h *EchoUpstream) fail(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if h.Kind == "anthropic" {
		_ = json.NewEncoder(w).Encode(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
		return
	}
	if typ == "not_found_error" {
		typ = "invalid_request_error"
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (h *EchoUpstream) models() []string {
	if len(h.Models) == 0 {
		return []string{"echo-1"}
	}
	return h.Models
}

func (h *EchoUpstream) modelObject(id string) map[string]any {
	if h.Kind == "anthropic" {
		return map[string]any{"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}
	}
	return map[string]any{"id": id, "object": "model", "created": 1735689600, "owned_by": "codevector-dev"}
}

func (h *EchoUpstream) listModels(w http.ResponseWriter) {
	ids := h.models()
	data := make([]any, 0, len(ids))
	for _, id := range ids {
		data = append(data, h.modelObject(id))
	}
	if h.Kind == "anthropic" {
		writeJSON(w, map[string]any{"data": data, "has_more": false, "first_id": ids[0], "last_id": ids[len(ids)-1]})
		return
	}
	writeJSON(w, map[string]any{"object": "list", "data": data})
}

func (h *EchoUpstream) getModel(w http.ResponseWriter, id string) {
	for _, m := range h.models() {
		if m == id {
			writeJSON(w, h.modelObject(id))
			return
		}
	}
	h.fail(w, http.StatusNotFound, "not_found_error", fmt.Sprintf("The model %q does not exist or you do not have access to it.", id))
}

// decode reads the request body; false when it answered 400.
func (h *EchoUpstream) decode(w http.ResponseWriter, r *http.Request, req *echoRequest) bool {
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 10<<20)).Decode(req); err != nil {
		h.fail(w, http.StatusBadRequest, "invalid_request_error", "request body is not JSON: "+err.Error())
		return false
	}
	return true
}

// bound checks n and the output bound of an OpenAI-shaped request: the
// number of answers and the most words each may have (0: no bound).
func (h *EchoUpstream) bound(w http.ResponseWriter, req *echoRequest) (answers int, limit int64, ok bool) {
	answers = 1
	if req.N != nil {
		if *req.N < 1 || *req.N > 128 {
			h.fail(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("Invalid 'n': integer below minimum value or above maximum value. Expected a value between 1 and 128, but got %d instead.", *req.N))
			return 0, 0, false
		}
		answers = int(*req.N)
	}
	for _, m := range []*int64{req.MaxTokens, req.MaxCompletion} {
		if m == nil {
			continue
		}
		if *m < 1 {
			h.fail(w, http.StatusBadRequest, "invalid_request_error", fmt.Sprintf("Invalid 'max_tokens': integer below minimum value. Expected a value >= 1, but got %d instead.", *m))
			return 0, 0, false
		}
		if limit == 0 || *m < limit {
			limit = *m
		}
	}
	return answers, limit, true
}

// answer is the echo of req cut to limit words (0: whole), as the words a
// stream sends, and whether it was cut.
func answer(req echoRequest, limit int64) (words []string, cut bool) {
	words = strings.SplitAfter("Echo: "+echoedText(req), " ")
	if limit > 0 && int64(len(words)) > limit {
		words, cut = words[:limit], true
	}
	return words, cut
}

// tokens counts the words of an answer as strings.Fields does.
func tokens(words []string) int64 { return int64(len(strings.Fields(strings.Join(words, "")))) }

func (h *EchoUpstream) chat(w http.ResponseWriter, r *http.Request, legacy bool) {
	var req echoRequest
	if !h.decode(w, r, &req) {
		return
	}
	answers, limit, ok := h.bound(w, &req)
	if !ok {
		return
	}
	words, cut := answer(req, limit)
	c := chatReply{legacy: legacy, model: req.Model, created: time.Now().Unix(), answers: answers, words: words, finish: "stop"}
	if cut {
		c.finish = "length"
	}
	completion := int64(answers) * tokens(words)
	c.usage = map[string]any{"prompt_tokens": 1, "completion_tokens": completion, "total_tokens": 1 + completion}
	c.id = fmt.Sprintf("chatcmpl-echo-%d", h.seq.Add(1))
	if legacy {
		c.id = fmt.Sprintf("cmpl-echo-%d", h.seq.Load())
	}
	if !req.Stream {
		writeJSON(w, c.whole())
		return
	}
	c.stream(w, r, req.StreamOptions != nil && req.StreamOptions.IncludeUsage, h.ChunkDelay)
}

// chatReply is an echo answer, n times over, in the shapes of OpenAI's
// chat completions or, legacy, its completions.
type chatReply struct {
	legacy    bool
	id, model string
	created   int64
	answers   int
	words     []string
	finish    string
	usage     map[string]any
}

// whole is the reply as one JSON object.
func (c *chatReply) whole() map[string]any {
	text := strings.Join(c.words, "")
	object := "chat.completion"
	if c.legacy {
		object = "text_completion"
	}
	choices := make([]any, c.answers)
	for i := range choices {
		choice := map[string]any{"index": i, "finish_reason": c.finish, "logprobs": nil}
		if c.legacy {
			choice["text"] = text
		} else {
			choice["message"] = map[string]any{"role": "assistant", "content": text, "refusal": nil}
		}
		choices[i] = choice
	}
	return map[string]any{"id": c.id, "object": object, "created": c.created, "model": c.model, "choices": choices, "usage": c.usage}
}

// stream sends the reply as server-sent events, a word per chunk, delay
// apart; with includeUsage, the usage follows in a last chunk of its own.
func (c *chatReply) stream(w http.ResponseWriter, r *http.Request, includeUsage bool, delay time.Duration) {
	object := "chat.completion.chunk"
	if c.legacy {
		object = "text_completion"
	}
	s := startStream(w)
	// send writes one chunk; with usage asked for, OpenAI adds
	// "usage": null to every chunk but the last.
	send := func(choices []any, u any) bool {
		chunk := map[string]any{"id": c.id, "object": object, "created": c.created, "model": c.model, "choices": choices}
		if includeUsage {
			chunk["usage"] = u
		}
		return s.data("", chunk)
	}
	if !c.legacy && !send(c.chunkChoices(map[string]any{"role": "assistant", "content": ""}, nil), nil) {
		return
	}
	for i, word := range c.words {
		if i > 0 && !s.pause(r, delay) {
			return
		}
		if !send(c.chunkChoices(map[string]any{"content": word}, nil), nil) {
			return
		}
	}
	end := c.chunkChoices(map[string]any{}, c.finish)
	if c.legacy {
		end = c.chunkChoices(map[string]any{"content": ""}, c.finish)
	}
	if !send(end, nil) {
		return
	}
	if includeUsage && !send([]any{}, c.usage) {
		return
	}
	s.done()
}

// chunkChoices are a chunk's choices, one per answer, each with delta
// (its content as text, legacy).
func (c *chatReply) chunkChoices(delta map[string]any, finish any) []any {
	out := make([]any, c.answers)
	for i := range out {
		choice := map[string]any{"index": i, "finish_reason": finish}
		if c.legacy {
			choice["text"] = delta["content"]
		} else {
			choice["delta"] = delta
		}
		out[i] = choice
	}
	return out
}

func (h *EchoUpstream) messages(w http.ResponseWriter, r *http.Request) {
	var req echoRequest
	if !h.decode(w, r, &req) {
		return
	}
	switch {
	case req.MaxTokens == nil:
		h.fail(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required")
		return
	case *req.MaxTokens < 1:
		h.fail(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Input should be greater than or equal to 1")
		return
	case len(req.Messages) == 0:
		h.fail(w, http.StatusBadRequest, "invalid_request_error", "messages: Field required")
		return
	}
	words, cut := answer(req, *req.MaxTokens)
	stop := "end_turn"
	if cut {
		stop = "max_tokens"
	}
	id := fmt.Sprintf("msg_echo%d", h.seq.Add(1))
	output := tokens(words)
	message := func(content []any, stop any, out int64) map[string]any {
		return map[string]any{
			"id": id, "type": "message", "role": "assistant", "model": req.Model, "content": content,
			"stop_reason": stop, "stop_sequence": nil,
			"usage": map[string]any{"input_tokens": 1, "output_tokens": out, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
		}
	}
	if !req.Stream {
		writeJSON(w, message([]any{map[string]any{"type": "text", "text": strings.Join(words, "")}}, stop, output))
		return
	}
	s := startStream(w)
	if !s.data("message_start", map[string]any{"type": "message_start", "message": message([]any{}, nil, 1)}) ||
		!s.data("content_block_start", map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]any{"type": "text", "text": ""}}) ||
		!s.data("ping", map[string]any{"type": "ping"}) {
		return
	}
	for i, word := range words {
		if i > 0 && !s.pause(r, h.ChunkDelay) {
			return
		}
		if !s.data("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]any{"type": "text_delta", "text": word}}) {
			return
		}
	}
	_ = s.data("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0}) &&
		s.data("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": output}}) &&
		s.data("message_stop", map[string]any{"type": "message_stop"})
}

func (h *EchoUpstream) embeddings(w http.ResponseWriter, r *http.Request) {
	var req echoRequest
	if !h.decode(w, r, &req) {
		return
	}
	var inputs []json.RawMessage
	if json.Unmarshal(req.Input, &inputs) != nil {
		inputs = []json.RawMessage{req.Input}
	}
	data := make([]any, len(inputs))
	for i := range data {
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": []float64{0.1, 0.2, 0.3}}
	}
	n := len(inputs)
	writeJSON(w, map[string]any{"object": "list", "data": data, "model": req.Model, "usage": map[string]any{"prompt_tokens": n, "total_tokens": n}})
}

// sse writes a server-sent event stream.
type sse struct {
	w       http.ResponseWriter
	flusher http.Flusher
}

func startStream(w http.ResponseWriter) *sse {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	f, _ := w.(http.Flusher)
	return &sse{w: w, flusher: f}
}

// data writes one event (with an event: line when event is set); false
// once the client is gone.
func (s *sse) data(event string, v any) bool {
	b, _ := json.Marshal(v)
	var err error
	if event != "" {
		_, err = fmt.Fprintf(s.w, "event: %s\ndata: %s\n\n", event, b)
	} else {
		_, err = fmt.Fprintf(s.w, "data: %s\n\n", b)
	}
	if err != nil {
		return false
	}
	if s.flusher != nil {
		s.flusher.Flush()
	}
	return true
}

// done ends an OpenAI stream.
func (s *sse) done() {
	fmt.Fprint(s.w, "data: [DONE]\n\n")
	if s.flusher != nil {
		s.flusher.Flush()
	}
}

// pause waits d between chunks; false when the client went away.
func (s *sse) pause(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	select {
	case <-time.After(d):
		return true
	case <-r.Context().Done():
		return false
	}
}

// echoedText is the text of the last user message, or of a legacy
// completion's prompt; content may be a string or an array of parts.
func echoedText(req echoRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		m := req.Messages[i]
		if m.Role != "user" {
			continue
		}
		return contentText(m.Content)
	}
	return contentText(req.Prompt)
}

func contentText(c json.RawMessage) string {
	var s string
	if json.Unmarshal(c, &s) == nil {
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(c, &parts) == nil {
		var b strings.Builder
		for _, p := range parts {
			b.WriteString(p.Text)
		}
		return b.String()
	}
	return ""
}
