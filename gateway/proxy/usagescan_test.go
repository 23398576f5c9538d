package proxy

import (
	"fmt"
	"strings"
	"testing"
)

// Responses as the providers send them (trimmed), for the usage tests here
// and through the proxy (meter_test.go).
const (
	openAIChatJSON = `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-2024-08-06","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0}},"service_tier":"default","system_fingerprint":"fp_1"}`

	openAIEmbeddingsJSON = `{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.0023064255,-0.009327292]}],"model":"text-embedding-3-small","usage":{"prompt_tokens":8,"total_tokens":8}}`

	openAIResponsesJSON = `{"id":"resp_1","object":"response","created_at":1741476542,"status":"completed","model":"gpt-4.1","output":[{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi","annotations":[]}]}],"usage":{"input_tokens":36,"input_tokens_details":{"cached_tokens":0},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":123}}`

	anthropicJSON = `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-6","content":[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":1000,"cache_creation":{"ephemeral_5m_input_tokens":100},"output_tokens":6,"service_tier":"standard"}}`

	openAIResponsesSSE = "event: response.created\n" +
		`data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}` + "\n\n" +
		"event: response.output_text.delta\n" +
		`data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hello"}` + "\n\n" +
		"event: response.output_text.done\n" +
		`data: {"type":"response.output_text.done","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hello"}` + "\n\n" +
		"event: response.completed\n" +
		`data: {"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","object":"response","status":"completed","output":[{"type":"message","content":[{"type":"output_text","text":"Hello","annotations":[]}]}],"usage":{"input_tokens":37,"input_tokens_details":{"cached_tokens":0},"output_tokens":11,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":48}}}` + "\n\n"

	anthropicSSE = "event: message_start\n" +
		`data: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-6","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"cache_creation_input_tokens":0,"cache_read_input_tokens":4,"output_tokens":1}}}` + "\n\n" +
		"event: content_block_start\n" +
		`data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}` + "\n\n" +
		"event: ping\n" +
		`data: {"type": "ping"}` + "\n\n" +
		"event: content_block_delta\n" +
		`data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}` + "\n\n" +
		"event: content_block_stop\n" +
		`data: {"type":"content_block_stop","index":0}` + "\n\n" +
		"event: message_delta\n" +
		`data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}` + "\n\n" +
		"event: message_stop\n" +
		`data: {"type":"message_stop"}` + "\n\n"
)

// chatStream is an OpenAI chat completions stream saying "Hello", as
// OpenAI sends it with stream_options.include_usage (withUsage: a
// "usage":null in every chunk and a last chunk with the usage) or without.
func chatStream(withUsage bool) []string {
	const head = `{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_1","choices":[`
	usageNull := ""
	if withUsage {
		usageNull = `,"usage":null`
	}
	var events []string
	for i, delta := range []string{`{"role":"assistant","content":"","refusal":null}`, `{"content":"Hel"}`, `{"content":"lo"}`, `{}`} {
		finish := "null"
		if i == 3 {
			finish = `"stop"`
		}
		events = append(events, fmt.Sprintf("data: %s{\"index\":0,\"delta\":%s,\"logprobs\":null,\"finish_reason\":%s}]%s,\"obfuscation\":\"k%d\"}\n\n",
			head, delta, finish, usageNull, i))
	}
	if withUsage {
		events = append(events, "data: "+head+`],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}},"obfuscation":"u"}`+"\n\n")
	}
	return append(events, "data: [DONE]\n\n")
}

// scanAll feeds body to a scanner chunk bytes at a time.
func scanAll(body string, sse bool, chunk int) *jsonScanner {
	if sse {
		var s sseScanner
		for i := 0; i < len(body); i += chunk {
			rest := []byte(body[i:min(i+chunk, len(body))])
			for len(rest) > 0 {
				n, _ := s.feed(rest)
				rest = rest[n:]
			}
		}
		return &s.json
	}
	var s jsonScanner
	for i := 0; i < len(body); i += chunk {
		s.feed([]byte(body[i:min(i+chunk, len(body))]), i)
	}
	s.end(len(body))
	return &s
}

func TestUsageScanner(t *testing.T) {
	tests := []struct {
		name          string
		body          string
		sse           bool
		input, output int64
		noUsage       bool
	}{
		{name: "openai chat json", body: openAIChatJSON, input: 19, output: 10},
		{name: "openai embeddings json", body: openAIEmbeddingsJSON, input: 8, output: 0},
		{name: "openai responses json", body: openAIResponsesJSON, input: 36, output: 87},
		{name: "anthropic json: cache counts are input", body: anthropicJSON, input: 1112, output: 6},
		{name: "openai chat sse", body: strings.Join(chatStream(true), ""), sse: true, input: 9, output: 12},
		{name: "openai chat sse without usage", body: strings.Join(chatStream(false), ""), sse: true, noUsage: true},
		{name: "openai responses sse", body: openAIResponsesSSE, sse: true, input: 37, output: 11},
		{name: "anthropic sse: message_delta replaces output", body: anthropicSSE, sse: true, input: 29, output: 15},
		{name: "crlf lines", body: strings.ReplaceAll(anthropicSSE, "\n", "\r\n"), sse: true, input: 29, output: 15},
		{name: "data split over two lines", body: "data: {\"usage\":{\"prompt_tokens\"\ndata: :5,\"completion_tokens\":7}}\n\n", sse: true, input: 5, output: 7},
		{name: "no space after data:", body: "data:{\"usage\":{\"input_tokens\":3,\"output_tokens\":4}}\n\n", sse: true, input: 3, output: 4},
		{name: "nested usage is not read", body: `{"choices":[{"usage":{"prompt_tokens":5}}],"x":{"usage":{"prompt_tokens":6}}}`, noUsage: true},
		{name: "pretty json", body: "{\n  \"usage\" : {\n    \"prompt_tokens\" : 1 ,\n    \"completion_tokens\" : 2\n  }\n}\n", input: 1, output: 2},
		{name: "not json", body: `<html>upstream error</html>`, noUsage: true},
		{name: "usage null", body: `{"usage":null}`, noUsage: true},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 2, 3, 7, 64, len(tt.body)} {
			t.Run(fmt.Sprintf("%s/chunk %d", tt.name, chunk), func(t *testing.T) {
				s := scanAll(tt.body, tt.sse, chunk)
				in, inOK := s.usage.input()
				out, outOK := s.usage.output()
				if tt.noUsage {
					if inOK || outOK {
						t.Fatalf("usage %d/%d found, want none", in, out)
					}
					return
				}
				if !inOK || in != tt.input || out != tt.output {
					t.Fatalf("usage = %d (found %v) in, %d (found %v) out; want %d, %d", in, inOK, out, outOK, tt.input, tt.output)
				}
			})
		}
	}
}

func TestUsageScannerText(t *testing.T) {
	tests := []struct {
		name string
		body string
		sse  bool
		want int64
	}{
		// "assistant" + "" + "Hel" + "lo": role and refusal count too, a few
		// bytes of over-estimate.
		{name: "chat deltas", body: strings.Join(chatStream(false), ""), sse: true, want: 14},
		// The deltas, not output_text.done's text nor response.completed's
		// copy of the whole answer.
		{name: "responses deltas", body: openAIResponsesSSE, sse: true, want: 5},
		{name: "anthropic deltas", body: anthropicSSE, sse: true, want: len64("text_delta") + len64("Hello") + len64("end_turn")},
		{name: "chat json message", body: openAIChatJSON, want: len64("assistant") + len64("Hello there")},
		{name: "anthropic json content", body: anthropicJSON, want: len64("text") + len64("Hello!")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := scanAll(tt.body, tt.sse, 5).text; got != tt.want {
				t.Errorf("text bytes = %d, want %d", got, tt.want)
			}
		})
	}
}

func len64(s string) int64 { return int64(len(s)) }

func TestUsageScannerEventInfo(t *testing.T) {
	tests := []struct {
		name         string
		event        string
		usageObject  bool
		choicesEmpty bool
		withoutNull  string // the event with usageNull removed, if any
	}{
		{
			name:        "usage null last",
			event:       `data: {"id":"1","choices":[{"delta":{}}],"usage":null}` + "\n\n",
			withoutNull: `data: {"id":"1","choices":[{"delta":{}}]}` + "\n\n",
		},
		{
			name:        "usage null in the middle",
			event:       `data: {"id":"1","usage":null,"obfuscation":"x"}` + "\n\n",
			withoutNull: `data: {"id":"1","obfuscation":"x"}` + "\n\n",
		},
		{
			name:        "usage null first",
			event:       `data: {"usage":null,"id":"1"}` + "\n\n",
			withoutNull: `data: {"id":"1"}` + "\n\n",
		},
		{
			name:        "usage null alone",
			event:       `data: {"usage":null}` + "\n\n",
			withoutNull: `data: {}` + "\n\n",
		},
		{
			name:        "spaced",
			event:       "event: x\ndata: {\"id\": \"1\", \"usage\": null }\n\n",
			withoutNull: "event: x\ndata: {\"id\": \"1\" }\n\n",
		},
		{name: "nested usage null is kept", event: `data: {"a":{"usage":null}}` + "\n\n"},
		{name: "usage chunk", event: `data: {"choices":[],"usage":{"prompt_tokens":1}}` + "\n\n", usageObject: true, choicesEmpty: true},
		{name: "azure's first chunk has no usage", event: `data: {"choices":[],"prompt_filter_results":[]}` + "\n\n", choicesEmpty: true},
		{name: "done", event: "data: [DONE]\n\n"},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 4, len(tt.event)} {
			t.Run(fmt.Sprintf("%s/chunk %d", tt.name, chunk), func(t *testing.T) {
				var s sseScanner
				ended := false
				for i := 0; i < len(tt.event); i += chunk {
					rest := []byte(tt.event[i:min(i+chunk, len(tt.event))])
					for len(rest) > 0 {
						var n int
						n, ended = s.feed(rest)
						rest = rest[n:]
					}
				}
				if !ended {
					t.Fatal("event did not end")
				}
				ev := s.last
				if ev.usageObject != tt.usageObject || ev.choicesEmpty != tt.choicesEmpty {
					t.Errorf("usageObject, choicesEmpty = %v, %v; want %v, %v", ev.usageObject, ev.choicesEmpty, tt.usageObject, tt.choicesEmpty)
				}
				got := ""
				if span := ev.usageNull; span[1] > span[0] {
					got = tt.event[:span[0]] + tt.event[span[1]:]
				}
				if got != tt.withoutNull {
					t.Errorf("without usage null:\n got %q\nwant %q", got, tt.withoutNull)
				}
			})
		}
	}
}

// FuzzUsageScanner: any response, as JSON or as an event stream and cut
// anywhere, scans without a panic; the counts do not depend on how the
// bytes were cut; usageNull spans lie inside their event.
func FuzzUsageScanner(f *testing.F) {
	for _, s := range []string{openAIChatJSON, openAIEmbeddingsJSON, openAIResponsesJSON, anthropicJSON,
		openAIResponsesSSE, anthropicSSE, strings.Join(chatStream(true), ""), `{"usage":null,"a":1}`, "data: x\r\n\r\n"} {
		f.Add([]byte(s), uint8(3))
	}
	f.Fuzz(func(t *testing.T, body []byte, cut uint8) {
		chunk := int(cut)%17 + 1
		for _, sse := range []bool{false, true} {
			whole := scanAll(string(body), sse, max(len(body), 1))
			parts := scanAll(string(body), sse, chunk)
			if whole.usage != parts.usage || whole.text != parts.text {
				t.Fatalf("sse=%v: whole %+v/%d, in chunks of %d %+v/%d", sse, whole.usage, whole.text, chunk, parts.usage, parts.text)
			}
			if whole.text < 0 {
				t.Fatalf("negative text %d", whole.text)
			}
		}
		var s sseScanner
		start := 0
		for rest := body; len(rest) > 0; {
			n, ended := s.feed(rest)
			rest = rest[n:]
			if !ended {
				continue
			}
			end := len(body) - len(rest)
			event := body[start:end]
			if span := s.last.usageNull; span[1] > span[0] && (span[0] < 0 || span[1] > len(event)) {
				t.Fatalf("usageNull %v outside event of %d bytes", span, len(event))
			}
			start = end
		}
	})
}
