package devmode

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func post(t *testing.T, url, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The stand-ins honour max_tokens and n as the real APIs do, and report
// usage where and when the real APIs report it.
func TestEchoUpstreamLikeTheRealAPIs(t *testing.T) {
	openai := httptest.NewServer(&EchoUpstream{Models: StandInModels["openai"]})
	defer openai.Close()
	anthropic := httptest.NewServer(&EchoUpstream{Kind: "anthropic", Models: StandInModels["anthropic"]})
	defer anthropic.Close()
	long := strings.Repeat("word ", 50)

	// A long answer is bounded by max_tokens (or max_completion_tokens),
	// n answers are billed n times.
	code, body := post(t, openai.URL+"/v1/chat/completions", `{"model":"gpt-4o","n":2,"max_completion_tokens":3,"messages":[{"role":"user","content":"`+long+`"}]}`)
	var chat struct {
		Choices []struct {
			Message      struct{ Content string }
			FinishReason string `json:"finish_reason"`
		}
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		}
	}
	if err := json.Unmarshal([]byte(body), &chat); err != nil || code != 200 || len(chat.Choices) != 2 ||
		chat.Choices[1].Message.Content != "Echo: word word " || chat.Choices[0].FinishReason != "length" || chat.Usage.CompletionTokens != 6 {
		t.Errorf("n=2, max_completion_tokens=3: %d %s", code, body)
	}
	if code, body := post(t, openai.URL+"/v1/chat/completions", `{"model":"gpt-4o","n":0,"messages":[]}`); code != 400 || !strings.Contains(body, "'n'") {
		t.Errorf("n=0: %d %s", code, body)
	}

	// A stream reports usage only when asked, in a last chunk without
	// choices; every other chunk then has "usage":null.
	_, body = post(t, openai.URL+"/v1/chat/completions", `{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"Hello"}]}`)
	if strings.Contains(body, `"usage"`) || !strings.HasSuffix(body, "data: [DONE]\n\n") {
		t.Errorf("stream without include_usage:\n%s", body)
	}
	_, body = post(t, openai.URL+"/v1/chat/completions", `{"model":"gpt-4o","stream":true,"max_tokens":1,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hello"}]}`)
	if !strings.Contains(body, `"choices":[],"created"`) || !strings.Contains(body, `"completion_tokens":1,`) ||
		!strings.Contains(body, `"finish_reason":"length"`) || !strings.Contains(body, `"usage":null`) {
		t.Errorf("stream with include_usage and max_tokens 1:\n%s", body)
	}

	// Anthropic requires max_tokens, stops at it, and streams usage in
	// message_start and message_delta.
	if code, body := post(t, anthropic.URL+"/v1/messages", `{"model":"claude-sonnet-4-6","messages":[{"role":"user","content":"Hello"}]}`); code != 400 ||
		!strings.Contains(body, `{"error":{"message":"max_tokens: Field required","type":"invalid_request_error"},"type":"error"}`) {
		t.Errorf("messages without max_tokens: %d %s", code, body)
	}
	_, body = post(t, anthropic.URL+"/v1/messages", `{"model":"claude-sonnet-4-6","max_tokens":4,"messages":[{"role":"user","content":[{"type":"text","text":"`+long+`"}]}]}`)
	if !strings.Contains(body, `"text":"Echo: word word word "`) || !strings.Contains(body, `"stop_reason":"max_tokens"`) || !strings.Contains(body, `"output_tokens":4`) {
		t.Errorf("messages, max_tokens 4: %s", body)
	}
	_, body = post(t, anthropic.URL+"/v1/messages", `{"model":"claude-sonnet-4-6","max_tokens":256,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`)
	for _, want := range []string{
		"event: message_start\ndata: {\"message\":{", `"usage":{"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"input_tokens":1,"output_tokens":1}`,
		"event: content_block_delta\n", `"text":"Hello"`,
		"event: message_delta\ndata: {\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"type\":\"message_delta\",\"usage\":{\"output_tokens\":2}}",
		"event: message_stop\n",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("Anthropic stream lacks %q:\n%s", want, body)
		}
	}

	// Listings in each API's shape.
	for url, want := range map[string]string{
		openai.URL + "/v1/models":                     `"object":"list"`,
		anthropic.URL + "/v1/models":                  `"has_more":false`,
		anthropic.URL + "/v1/models/claude-haiku-4-5": `"id":"claude-haiku-4-5"`,
	} {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
			t.Errorf("GET %s: %d %s", url, resp.StatusCode, b)
		}
	}
}
