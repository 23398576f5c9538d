package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

// The request from the product docs, byte for byte, through the gateway.
func TestDocsRequestReachesRoutedProvider(t *testing.T) {
	env.StartManager(t, manager.Options{})
	openaiUp, anthropicUp := newUpstream(t, 0), newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, openaiUp, anthropicUp)})
	_, key := env.IssueKey(t, env.Namespace(t), "laptop")

	body := `{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello"}]}`
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key.Reveal())
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status = %d", resp.StatusCode)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("response has no X-Request-Id")
	}
	var answer struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatal(err)
	}
	if len(answer.Choices) != 1 || answer.Choices[0].Message.Content != "Echo: Hello" || answer.Model != "claude-sonnet-4-6" {
		t.Errorf("answer = %+v, want the upstream's echo of Hello", answer)
	}

	if n := len(openaiUp.requests()); n != 0 {
		t.Errorf("openai upstream got %d requests; claude-* must route to anthropic", n)
	}
	got := anthropicUp.requests()
	if len(got) != 1 {
		t.Fatalf("anthropic upstream got %d requests, want 1", len(got))
	}
	r := got[0]
	if r.Method != http.MethodPost || r.Path != "/v1/chat/completions" {
		t.Errorf("upstream saw %s %s", r.Method, r.Path)
	}
	if string(r.Body) != body {
		t.Errorf("upstream body = %q, want the client's bytes %q", r.Body, body)
	}
	if r.Header.Get("X-Api-Key") != "sk-ant-upstream" || r.Header.Get("Anthropic-Version") != "2023-06-01" {
		t.Errorf("upstream headers x-api-key=%q anthropic-version=%q, want the provider's credential and header", r.Header.Get("X-Api-Key"), r.Header.Get("Anthropic-Version"))
	}
	for name, values := range r.Header {
		for _, v := range values {
			if strings.Contains(v, key.Reveal()) || strings.Contains(v, key.DisplayPrefix()) {
				t.Errorf("upstream saw the user's key in header %s", name)
			}
		}
	}
}

func TestOpenAIClientLibraryThroughGateway(t *testing.T) {
	env.StartManager(t, manager.Options{})
	openaiUp := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, openaiUp, newUpstream(t, 0))})
	_, key := env.IssueKey(t, env.Namespace(t), "sdk")

	client := openai.NewClient(option.WithBaseURL(gw.URL+"/gateway/openai/v1/"), option.WithAPIKey(key.Reveal()))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hi")},
	}

	completion, err := client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatalf("chat completion through the gateway: %v", err)
	}
	if got := completion.Choices[0].Message.Content; got != "Echo: Say hi" {
		t.Errorf("completion = %q", got)
	}

	stream := client.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("streaming completion: %v", err)
	}
	if got := acc.Choices[0].Message.Content; got != "Echo: Say hi" || chunks < 3 {
		t.Errorf("streamed %d chunks adding up to %q", chunks, got)
	}

	// The library reports a refused key as an API error with status 401.
	bad := openai.NewClient(option.WithBaseURL(gw.URL+"/gateway/openai/v1/"), option.WithAPIKey("cvk_not-a-key"), option.WithMaxRetries(0))
	_, err = bad.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "invalid_api_key" {
		t.Errorf("bad key: err = %v, want a 401 invalid_api_key", err)
	}
	for _, r := range openaiUp.requests() {
		if auth := r.Header.Get("Authorization"); auth != "Bearer sk-upstream-openai" {
			t.Errorf("upstream Authorization = %q, want the provider credential", auth)
		}
	}
}
