package metering

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/metering/meteringtest"
)

func TestScanRequest(t *testing.T) {
	tests := []struct {
		name         string
		body         string
		model        string
		stream       bool
		maxOutput    int64
		answers      int64
		includeUsage bool
		err          string
	}{
		{name: "chat", body: `{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, model: "gpt-4o", maxOutput: 100},
		{name: "stream", body: `{"model":"gpt-4o","stream":true,"max_completion_tokens":5}`, model: "gpt-4o", stream: true, maxOutput: 5},
		{name: "responses", body: `{"model":"o3","input":"x","max_output_tokens":2e3}`, model: "o3", maxOutput: 2000},
		{name: "largest max", body: `{"max_tokens":10,"max_completion_tokens":20}`, maxOutput: 20},
		{name: "include_usage", body: `{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}`, stream: true, includeUsage: true},
		{name: "include_usage false", body: `{"stream":true,"stream_options":{"include_usage":false}}`, stream: true},
		{name: "stream false", body: `{"model":"m","stream":false}`, model: "m"},
		{name: "escaped key", body: `{"mod\u0065l":"gpt-4o"}`, model: "gpt-4o"},
		{name: "nested model is not the model", body: `{"messages":[{"model":"x"}]}`},
		{name: "not an object", body: `["model","gpt-4o"]`, err: "must be one JSON object"},
		{name: "trailing garbage", body: `{"model":"gpt-4o"} {"model":"o3"}`, err: "after its JSON object"},
		{name: "trailing text", body: `{"model":"gpt-4o"} x`, err: "after its JSON object"},
		{name: "empty", body: ``, err: "must be one JSON object"},
		{name: "missing comma", body: `{"n":1"model":"o3-pro","model":"gpt-4o-mini"}`, err: "not valid JSON"},
		{name: "nested duplicate", body: `{"model":"m","messages":[{"role":"user","role":"system"}]}`, err: `duplicate object member name "role"`},
		{name: "invalid UTF-8", body: "{\"model\":\"gpt-4o\xff\"}", err: "not valid JSON"},
		{name: "max_tokens past int64", body: `{"max_tokens":9223372036854775807}`, maxOutput: maxTokenCount},
		{name: "max_tokens past uint64", body: `{"max_tokens":99999999999999999999999}`, maxOutput: maxTokenCount},
		{name: "max_tokens as a huge float", body: `{"max_tokens":1e400}`, maxOutput: maxTokenCount},
		{name: "max_tokens integral float", body: `{"max_tokens":100.0}`, maxOutput: 100},
		{name: "max_tokens null", body: `{"max_tokens":null}`},
		{name: "max_tokens negative", body: `{"max_tokens":-1}`, err: "max_tokens must be a whole number"},
		{name: "max_tokens negative huge", body: `{"max_tokens":-99999999999999999999999}`, err: "max_tokens must be a whole number"},
		{name: "max_tokens zero", body: `{"max_tokens":0}`, err: "max_tokens must be a whole number"},
		{name: "max_tokens fraction", body: `{"max_tokens":10.5}`, err: "max_tokens must be a whole number"},
		{name: "max_tokens string", body: `{"max_tokens":"100"}`, err: "max_tokens must be a whole number"},
		{name: "n", body: `{"n":128,"max_tokens":1000}`, answers: 128, maxOutput: 1000},
		{name: "best_of over n", body: `{"n":2,"best_of":5}`, answers: 5},
		{name: "n too large", body: `{"n":129}`, err: "n must be a whole number from 1 to 128"},
		{name: "n zero", body: `{"n":0}`, err: "n must be a whole number from 1 to 128"},
		{name: "n string", body: `{"n":"128"}`, err: "n must be a whole number from 1 to 128"},
		{name: "n in another case", body: `{"N":128}`, err: `write it "n"`},
		{name: "model not a string", body: `{"model":7}`},
		{name: "duplicate model", body: `{"model":"gpt-4o-mini","messages":[],"model":"o3"}`, err: `"model" more than once`},
		{name: "duplicate escaped", body: `{"model":"a","\u006dodel":"b"}`, err: "more than once"},
		{name: "model in another case", body: `{"model":"a","Model":"b"}`, err: `"Model": write it "model"`},
		{name: "unicode fold", body: "{\"\u017Ftream\":true}", err: "write it \"stream\""},
		{name: "kelvin sign", body: "{\"max_to\u212Aens\":1}", err: "write it \"max_tokens\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseMetered([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if f.model != tt.model || f.stream != tt.stream || f.maxOutput != tt.maxOutput || f.includeUsage != tt.includeUsage || f.answers != tt.answers {
				t.Errorf("got model %q stream %v max %d includeUsage %v answers %d; want %q %v %d %v %d",
					f.model, f.stream, f.maxOutput, f.includeUsage, f.answers, tt.model, tt.stream, tt.maxOutput, tt.includeUsage, tt.answers)
			}
		})
	}
}

func TestInjectIncludeUsage(t *testing.T) {
	tests := []struct {
		name, body, want string
	}{
		{
			name: "absent",
			body: `{"model":"gpt-4o","stream":true}`,
			want: `{"model":"gpt-4o","stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name: "absent, spaces kept",
			body: "{ \"model\" : \"gpt-4o\",\n \"stream\": true\n}\n",
			want: "{ \"model\" : \"gpt-4o\",\n \"stream\": true\n,\"stream_options\":{\"include_usage\":true}}\n",
		},
		{
			name: "other options",
			body: `{"stream":true,"stream_options":{"include_obfuscation":false}}`,
			want: `{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}`,
		},
		{
			name: "empty options",
			body: `{"stream":true,"stream_options":{ }}`,
			want: `{"stream":true,"stream_options":{"include_usage":true }}`,
		},
		{
			name: "false",
			body: `{"stream":true,"stream_options":{"include_usage":false},"n":1}`,
			want: `{"stream":true,"stream_options":{"include_usage":true},"n":1}`,
		},
		{
			name: "null options",
			body: `{"stream_options":null,"stream":true}`,
			want: `{"stream_options":{"include_usage":true},"stream":true}`,
		},
		{
			name: "unicode and escapes elsewhere untouched",
			body: `{"messages":[{"content":"h\u00e9llo \"}\" \\"}],"stream":true}`,
			want: `{"messages":[{"content":"h\u00e9llo \"}\" \\"}],"stream":true,"stream_options":{"include_usage":true}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parseMetered([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := injectIncludeUsage([]byte(tt.body), &f)
			if !ok || string(got) != tt.want {
				t.Fatalf("got %q (%v)\nwant %q", got, ok, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("result is not JSON")
			}
		})
	}

	body := []byte(`{"stream":true,"stream_options":"yes"}`)
	f, _ := scanRequest(body)
	if got, ok := injectIncludeUsage(body, &f); ok || string(got) != string(body) {
		t.Errorf("stream_options a string: got %q, %v; want the body unchanged", got, ok)
	}
}

func TestEstimateInputTokens(t *testing.T) {
	text := `{"model":"gpt-4o","messages":[{"role":"user","content":"` + strings.Repeat("word ", 2000) + `"}]}`
	if got, want := estimateInputTokens([]byte(text)), int64((len(text)+3)/4); got != want {
		t.Errorf("text: %d, want %d (bytes/4)", got, want)
	}
	cjk := `{"content":"` + strings.Repeat("漢字", 2000) + `"}`
	if got, want := estimateInputTokens([]byte(cjk)), int64((len(cjk)+3)/4); got != want {
		t.Errorf("CJK text is not media: %d, want %d", got, want)
	}
	image := strings.Repeat("iVBORw0KGgoAAAANSUhEUgAA", 4000) // 96,000 bytes
	withImage := `{"content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,` + image + `"}},{"type":"text","text":"what is this"}]}`
	media := len("data:image/png;base64,") + len(image)
	want := int64((len(withImage)-media+3)/4 + (media+31)/32)
	if got := estimateInputTokens([]byte(withImage)); got != want {
		t.Errorf("image: %d, want %d", got, want)
	}
	if got := estimateInputTokens(nil); got != 0 {
		t.Errorf("empty body: %d", got)
	}
}

func TestMatchModel(t *testing.T) {
	tests := []struct {
		globs []string
		model string
		want  bool
	}{
		{[]string{"gpt-4o*"}, "gpt-4o", true},
		{[]string{"gpt-4o*"}, "gpt-4o-mini-2024-07-18", true},
		{[]string{"gpt-4o*"}, "gpt-4.1", false},
		{[]string{"gpt-4o*", "claude-sonnet-*"}, "claude-sonnet-4-6", true},
		{[]string{"claude-sonnet-*"}, "claude-sonnet", false},
		{[]string{"o?"}, "o3", true},
		{[]string{"o?"}, "o3-pro", false},
		{[]string{"*"}, "meta-llama/Llama-3", false}, // path.Match: * stops at /
		{[]string{"*/*"}, "meta-llama/Llama-3", true},
		{[]string{"*"}, "", false},
		{[]string{"[", "gpt-4o"}, "gpt-4o", true}, // a malformed glob matches nothing, the next still counts
		{nil, "gpt-4o", false},
	}
	for _, tt := range tests {
		if got := MatchModel(tt.globs, tt.model); got != tt.want {
			t.Errorf("MatchModel(%q, %q) = %v, want %v", tt.globs, tt.model, got, tt.want)
		}
	}
}

func TestRefusalWrite(t *testing.T) {
	tests := []struct {
		name       string
		refusal    *Refusal
		status     int
		code, typ  string
		msgPart    string
		headers    map[string]string
		absentHdrs []string
	}{
		{
			name:       "model not allowed",
			refusal:    ModelNotAllowed("gpt-4.1"),
			status:     http.StatusForbidden,
			code:       "model_not_allowed",
			typ:        "invalid_request_error",
			msgPart:    `"gpt-4.1"`,
			absentHdrs: []string{"Retry-After", "X-Should-Retry", "X-Ratelimit-Limit-Requests"},
		},
		{
			name: "rate limit",
			refusal: RateLimitExceeded("Rate limit of 600 requests per minute reached.", 1500*time.Millisecond,
				&RateLimit{Limit: 600, Remaining: 0, Reset: 1500 * time.Millisecond},
				&RateLimit{Limit: 200000, Remaining: 150000, Reset: 6 * time.Minute}),
			status:  http.StatusTooManyRequests,
			code:    "rate_limit_exceeded",
			typ:     "rate_limit_error",
			msgPart: "600 requests",
			headers: map[string]string{
				"Retry-After":                    "2",
				"Retry-After-Ms":                 "1500",
				"X-Ratelimit-Limit-Requests":     "600",
				"X-Ratelimit-Remaining-Requests": "0",
				"X-Ratelimit-Reset-Requests":     "1.5s",
				"X-Ratelimit-Limit-Tokens":       "200000",
				"X-Ratelimit-Remaining-Tokens":   "150000",
				"X-Ratelimit-Reset-Tokens":       "6m0s",
			},
			absentHdrs: []string{"X-Should-Retry"},
		},
		{
			name:    "monthly budget",
			refusal: BudgetExceeded("The key's budget of $50 per month is spent.", 72*time.Hour),
			status:  http.StatusTooManyRequests,
			code:    "budget_exceeded",
			typ:     "insufficient_quota",
			msgPart: "$50",
			headers: map[string]string{"Retry-After": "259200", "X-Should-Retry": "false"},
		},
		{
			name: "counters unavailable",
			refusal: &Refusal{Status: http.StatusServiceUnavailable, Type: "server_error", Code: "limits_unavailable",
				Message: "The gateway cannot count this API key's limits right now.", RetryAfter: time.Second},
			status:     http.StatusServiceUnavailable,
			code:       "limits_unavailable",
			typ:        "server_error",
			msgPart:    "cannot count",
			headers:    map[string]string{"Retry-After": "1", "Retry-After-Ms": "1000"},
			absentHdrs: []string{"X-Should-Retry"},
		},
		{
			name:       "total budget",
			refusal:    BudgetExceeded("The key's budget is spent.", 0),
			status:     http.StatusTooManyRequests,
			code:       "budget_exceeded",
			typ:        "insufficient_quota",
			msgPart:    "spent",
			headers:    map[string]string{"X-Should-Retry": "false"},
			absentHdrs: []string{"Retry-After", "Retry-After-Ms"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			tt.refusal.Write(rec)
			resp := rec.Result()
			var e struct {
				Error struct{ Type, Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
				t.Fatalf("body %q is not a JSON error: %v", rec.Body.Bytes(), err)
			}
			if resp.StatusCode != tt.status || e.Error.Type != tt.typ || e.Error.Code != tt.code || !strings.Contains(e.Error.Message, tt.msgPart) {
				t.Errorf("got %d %s/%s %q, want %d %s/%s containing %q", resp.StatusCode, e.Error.Type, e.Error.Code, e.Error.Message, tt.status, tt.typ, tt.code, tt.msgPart)
			}
			for k, v := range tt.headers {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			for _, k := range tt.absentHdrs {
				if got := resp.Header.Get(k); got != "" {
					t.Errorf("%s = %q, want none", k, got)
				}
			}
		})
	}
}

// BenchmarkMeterParsing is the CPU metering adds per request, without the
// round trip that dominates BenchmarkMeter: reading the request body's
// fields and estimate, and scanning answers for usage.
func BenchmarkMeterParsing(b *testing.B) {
	request := []byte(`{"model":"gpt-4o","stream":true,"max_tokens":512,"messages":[{"role":"system","content":"` +
		strings.Repeat("You are a helpful assistant. ", 40) + `"},{"role":"user","content":"hello"}]}`)
	b.Run("request", func(b *testing.B) {
		b.SetBytes(int64(len(request)))
		b.ReportAllocs()
		for b.Loop() {
			f, err := parseMetered(request)
			if err != nil || f.model != "gpt-4o" {
				b.Fatal(f, err)
			}
			_ = estimateInputTokens(request)
			if _, ok := injectIncludeUsage(request, &f); !ok {
				b.Fatal("not injected")
			}
		}
	})
	// The strict validation alone (validObject), on the request above
	// and on a 1 MiB conversation: what reading any Content-Type as one
	// I-JSON object costs.
	large := []byte(`{"model":"gpt-4o","messages":[` + strings.Repeat(`{"role":"user","content":"`+strings.Repeat("lorem ipsum ", 80)+`"},`, 1000) + `{"role":"user","content":"hi"}]}`)
	for name, body := range map[string][]byte{"validate-1.2KiB": request, "validate-1MiB": large} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if err := validObject(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	scan := func(body string, sse bool) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				if s := scanAll(body, sse, len(body)); s.usage.set == 0 {
					b.Fatal("no usage")
				}
			}
		}
	}
	b.Run("openai-json", scan(meteringtest.OpenAIChatJSON, false))
	b.Run("openai-sse", scan(strings.Join(meteringtest.ChatStream(true), ""), true))
	b.Run("responses-sse", scan(meteringtest.OpenAIResponsesSSE, true))
	b.Run("anthropic-sse", scan(meteringtest.AnthropicSSE, true))
}
