package server_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// streamingProvider answers like OpenAI and Anthropic do when they stream:
// OpenAI sends a usage chunk only when asked (stream_options.include_usage),
// Anthropic reports input in message_start and output in message_delta.
func streamingProvider(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Stream        bool `json:"stream"`
			StreamOptions struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
		}
		body, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "text/event-stream")
		send := func(event, data string) {
			if event != "" {
				fmt.Fprintf(w, "event: %s\n", event)
			}
			fmt.Fprintf(w, "data: %s\n\n", data)
			w.(http.Flusher).Flush()
		}
		switch r.URL.Path {
		case "/v1/chat/completions":
			for _, word := range []string{"Hello", " from", " OpenAI"} {
				send("", fmt.Sprintf(`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":%q},"finish_reason":null}]}`, word))
			}
			send("", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`)
			if req.StreamOptions.IncludeUsage {
				send("", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`)
			}
			send("", "[DONE]")
		case "/v1/messages":
			send("message_start", `{"type":"message_start","message":{"id":"m1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":13,"output_tokens":1}}}`)
			send("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
			send("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello from Claude"}}`)
			send("content_block_stop", `{"type":"content_block_stop","index":0}`)
			send("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":5}}`)
			send("message_stop", `{"type":"message_stop"}`)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// Streams are counted from the providers' own usage figures in both
// formats, priced per model, and the client sees exactly the stream it
// asked for: no usage chunk it did not request (LiteLLM records streams
// with zero spend; we must not).
func TestStreamsAreCountedInBothProviderFormats(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := streamingProvider(t)
	ps, err := providers.ParseProviders([]byte(fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential: {env: OPENAI_API_KEY}
    pricing:
      "gpt-4o*": {input: 2.50, output: 10}
  anthropic:
    baseURL: %s
    credential: {header: x-api-key, format: "{value}", env: ANTHROPIC_API_KEY}
    pricing:
      "claude-sonnet-*": {input: 3, output: 15}
`, up.URL, up.URL)), func(string) string { return "sk-upstream" })
	if err != nil {
		t.Fatal(err)
	}
	gw := startGateway(t, server.Options{Providers: ps, LastUsedInterval: 200 * time.Millisecond})
	k, key := env.IssueKey(t, env.Namespace(t), "streamer", func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Budget = &gatewayv1alpha1.Budget{USD: "5", Period: gatewayv1alpha1.BudgetDay}
	})
	testenv.Eventually(t, 5*time.Second, func() error {
		if e := gw.Index().Lookup(strings.TrimPrefix(k.Status.Prefix, "cvk_")); e == nil || e.Policy == nil {
			return fmt.Errorf("the gateway has not seen the key's budget")
		}
		return nil
	})

	// OpenAI, with the official client, which did not ask for usage.
	client := openai.NewClient(option.WithBaseURL(gw.URL+"/gateway/openai/v1/"), option.WithAPIKey(key.Reveal()), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hello")},
	})
	var text strings.Builder
	chunks := 0
	for stream.Next() {
		c := stream.Current()
		chunks++
		if len(c.Choices) == 0 || c.Usage.TotalTokens != 0 {
			t.Errorf("the client received a usage chunk it did not ask for: %s", c.RawJSON())
		}
		if len(c.Choices) > 0 {
			text.WriteString(c.Choices[0].Delta.Content)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "Hello from OpenAI" || chunks != 4 {
		t.Errorf("client saw %d chunks, text %q; want 4 chunks, %q", chunks, text.String(), "Hello from OpenAI")
	}

	// Anthropic's Messages stream.
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/gateway/anthropic/v1/messages",
		strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`))
	req.Header.Set("x-api-key", key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "Hello from Claude") {
		t.Fatalf("anthropic stream: %d %s", resp.StatusCode, body)
	}

	// 11 + 13 input, 7 + 5 output; dollars: OpenAI 11 x 2.50 + 7 x 10, and
	// Anthropic 13 x 3 + 5 x 15, per million tokens.
	want := gatewayv1alpha1.NanoUSD((11*2_500_000_000 + 7*10_000_000_000 + 13*3_000_000_000 + 5*15_000_000_000) / 1_000_000)
	testenv.Eventually(t, 10*time.Second, func() error {
		live := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: k.Name}, live); err != nil {
			return err
		}
		u := live.Status.Usage
		if u == nil || u.Requests != 2 || u.InputTokens != 24 || u.OutputTokens != 12 || u.USD != want.String() {
			return fmt.Errorf("status.usage = %+v, want 2 requests, 24 input, 12 output tokens, $%s", u, want)
		}
		if u.Summary != want.Display()+" of $5" {
			return fmt.Errorf("usage summary %q, want %q", u.Summary, want.Display()+" of $5")
		}
		return nil
	})

	// A model with no price cannot be counted against dollars: refused,
	// never free.
	status, _, errBody := postChat(t, gw.URL, key.Reveal(), "o3-pro")
	if status != http.StatusForbidden || errorCode(t, errBody) != "model_not_priced" || !strings.Contains(errBody, "pricing:") {
		t.Errorf("unpriced model with a dollar budget: %d %s", status, errBody)
	}
}
