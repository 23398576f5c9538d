package metering

import (
	"fmt"
	"strings"
	"testing"

	"github.com/codevector/codevector/gateway/metering/meteringtest"
)

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
		{name: "openai chat json", body: meteringtest.OpenAIChatJSON, input: 19, output: 10},
		{name: "openai embeddings json", body: meteringtest.OpenAIEmbeddingsJSON, input: 8, output: 0},
		{name: "openai responses json", body: meteringtest.OpenAIResponsesJSON, input: 36, output: 87},
		{name: "anthropic json: cache counts are input", body: meteringtest.AnthropicJSON, input: 1112, output: 6},
		{name: "openai chat sse", body: strings.Join(meteringtest.ChatStream(true), ""), sse: true, input: 9, output: 12},
		{name: "openai chat sse without usage", body: strings.Join(meteringtest.ChatStream(false), ""), sse: true, noUsage: true},
		{name: "openai responses sse", body: meteringtest.OpenAIResponsesSSE, sse: true, input: 37, output: 11},
		{name: "anthropic sse: message_delta replaces output", body: meteringtest.AnthropicSSE, sse: true, input: 29, output: 15},
		{name: "crlf lines", body: strings.ReplaceAll(meteringtest.AnthropicSSE, "\n", "\r\n"), sse: true, input: 29, output: 15},
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
		{name: "chat deltas", body: strings.Join(meteringtest.ChatStream(false), ""), sse: true, want: 14},
		// The deltas, not output_text.done's text nor response.completed's
		// copy of the whole answer.
		{name: "responses deltas", body: meteringtest.OpenAIResponsesSSE, sse: true, want: 5},
		{name: "anthropic deltas", body: meteringtest.AnthropicSSE, sse: true, want: len64("text_delta") + len64("Hello") + len64("end_turn")},
		{name: "chat json message", body: meteringtest.OpenAIChatJSON, want: len64("assistant") + len64("Hello there")},
		{name: "anthropic json content", body: meteringtest.AnthropicJSON, want: len64("text") + len64("Hello!")},
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
	for _, s := range []string{meteringtest.OpenAIChatJSON, meteringtest.OpenAIEmbeddingsJSON, meteringtest.OpenAIResponsesJSON, meteringtest.AnthropicJSON,
		meteringtest.OpenAIResponsesSSE, meteringtest.AnthropicSSE, strings.Join(meteringtest.ChatStream(true), ""), `{"usage":null,"a":1}`, "data: x\r\n\r\n"} {
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
