package proxy

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/metering/meteringtest"
)

// The official OpenAI client against the metering proxy.

func TestMeterOpenAIClientStream(t *testing.T) {
	for _, askUsage := range []bool{false, true} {
		name := "usage not asked"
		if askUsage {
			name = "usage asked"
		}
		t.Run(name, func(t *testing.T) {
			upstream := streamUpstream(t)
			m := newTestMeter(t)
			front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})
			client := openai.NewClient(option.WithBaseURL(front.URL+"/gateway/openai/v1/"), option.WithAPIKey(clientKey))

			params := openai.ChatCompletionNewParams{
				Model:    "gpt-4o",
				Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
			}
			if askUsage {
				params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
			}
			stream := client.Chat.Completions.NewStreaming(context.Background(), params)
			acc := openai.ChatCompletionAccumulator{}
			var usageChunks, withUsageField int
			for stream.Next() {
				chunk := stream.Current()
				acc.AddChunk(chunk)
				if chunk.JSON.Usage.Valid() {
					usageChunks++
				}
				if strings.Contains(chunk.RawJSON(), `"usage"`) {
					withUsageField++
				}
			}
			if err := stream.Err(); err != nil {
				t.Fatalf("stream: %v", err)
			}
			if got := acc.Choices[0].Message.Content; got != "Hello" {
				t.Errorf("content = %q, want Hello", got)
			}
			if askUsage {
				if usageChunks != 1 || acc.Usage.PromptTokens != 9 || acc.Usage.CompletionTokens != 12 {
					t.Errorf("%d usage chunks, usage %+v; want the one OpenAI sends", usageChunks, acc.Usage)
				}
			} else if withUsageField != 0 {
				t.Errorf("%d chunks mention usage, which the client did not ask for", withUsageField)
			}
			if _, u := m.only(t); u.InputTokens != 9 || u.OutputTokens != 12 || !u.Complete || u.Estimated {
				t.Errorf("settled %+v", u)
			}
		})
	}
}

func TestMeterOpenAIClientRetriesRateLimit(t *testing.T) {
	// Longer than the SDK's own first backoff (0.5 s less up to a quarter
	// of jitter), so that a retry no sooner than this shows the SDK read
	// retry-after-ms: a lower bound holds on a loaded machine, where an
	// upper bound on a short wait does not.
	const retryAfter = 1500 * time.Millisecond
	upstream := recordingUpstream(t, "application/json", meteringtest.OpenAIChatJSON)
	m := newTestMeter(t)
	m.refuse = func(n int, _ metering.Request) *metering.Refusal {
		if n == 1 {
			return metering.RateLimitExceeded("Rate limit of 1 request per minute reached.", retryAfter,
				&metering.RateLimit{Limit: 1, Remaining: 0, Reset: retryAfter}, nil)
		}
		return nil
	}
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})
	client := openai.NewClient(option.WithBaseURL(front.URL+"/gateway/openai/v1/"), option.WithAPIKey(clientKey))

	start := time.Now()
	completion, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err != nil {
		t.Fatalf("completion: %v", err)
	}
	if completion.Choices[0].Message.Content != "Hello there" {
		t.Errorf("completion %q", completion.Choices[0].Message.Content)
	}
	if n := m.admitCount(); n != 2 {
		t.Errorf("Admit called %d times, want 2 (refused, then admitted on the client's retry)", n)
	}
	if n := len(upstream.received()); n != 1 {
		t.Errorf("upstream received %d requests, want 1", n)
	}
	if d := time.Since(start); d < retryAfter {
		t.Errorf("retried after %v, before the %v the 429's retry-after-ms asked for", d, retryAfter)
	}
}

func TestMeterOpenAIClientDoesNotRetrySpentBudget(t *testing.T) {
	upstream := recordingUpstream(t, "application/json", meteringtest.OpenAIChatJSON)
	m := newTestMeter(t)
	m.refuse = func(int, metering.Request) *metering.Refusal {
		return metering.BudgetExceeded("The key's budget of 1000000 tokens per month is spent.", 10*24*time.Hour)
	}
	front := newFront(t, testProviders(t, upstream.URL, upstream.URL), Options{Meter: m})
	client := openai.NewClient(option.WithBaseURL(front.URL+"/gateway/openai/v1/"), option.WithAPIKey(clientKey))

	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusTooManyRequests || apiErr.Code != "budget_exceeded" {
		t.Fatalf("err = %v, want a 429 budget_exceeded", err)
	}
	if n := m.admitCount(); n != 1 {
		t.Errorf("Admit called %d times, want 1: retrying cannot help", n)
	}
}
