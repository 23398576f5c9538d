package chaos

import (
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"time"
)

// holdUser prefixes the OpenAI "user" field of requests by keys with a
// concurrency limit: the fake provider holds each such request for
// 100-400 ms, so that a hot key's requests overlap, and records when it
// held it (TypeUpstream), which lies within the time the gateway counted
// the request's concurrency slot (taken before it forwards, given back
// after the answer).
const holdUser = "chaos-hold:"

// provider is the run's fake LLM provider: dev mode's echo, which reports
// usage, behind the hold.
type provider struct {
	echo   http.Handler
	record func(Record)
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	var req struct {
		User string `json:"user"`
	}
	if json.Unmarshal(body, &req) == nil {
		if key, ok := strings.CutPrefix(req.User, holdUser); ok {
			start := time.Now()
			time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
			// Recorded before the answer begins: the gateway settles (and
			// frees the slot) only after it has read the answer.
			p.record(Record{Type: TypeUpstream, Key: key, Start: start, End: time.Now()})
		}
	}
	p.echo.ServeHTTP(w, r)
}
