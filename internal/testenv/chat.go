package testenv

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// DocsChatBody is the chat completion the docs' curl example sends (the
// README's tour and the banner of `codevector dev`).
const DocsChatBody = `{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello"}]}`

// DocsChat sends DocsChatBody through the gateway at base with key, as the
// docs' curl example does, and returns the answer's status and body.
func DocsChat(t testing.TB, base, key string) (status int, body string) {
	t.Helper()
	return PostChat(t, base, key, DocsChatBody)
}

// PostChat sends a chat completion request body through the gateway's
// OpenAI route at base with key and returns the answer's status and body.
func PostChat(t testing.TB, base, key, chatBody string) (status int, body string) {
	t.Helper()
	status, _, body = PostChatWithHeaders(t, base, key, chatBody)
	return status, body
}

// PostChatWithHeaders is PostChat that also returns the answer's headers
// (a 429's Retry-After and x-ratelimit-*).
func PostChatWithHeaders(t testing.TB, base, key, chatBody string) (status int, header http.Header, body string) {
	t.Helper()
	return PostChatAs(t, base, key, "application/json", chatBody)
}

// PostChatAs is PostChatWithHeaders with the request's Content-Type ("" for
// none) and more headers, as name, value pairs.
func PostChatAs(t testing.TB, base, key, contentType, chatBody string, headers ...string) (status int, header http.Header, body string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/gateway/openai/v1/chat/completions", strings.NewReader(chatBody))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" { // "" sends no key at all
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}
