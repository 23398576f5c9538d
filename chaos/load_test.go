package chaos

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxInFlight bounds the load's concurrent requests: a stopped replica
// holds its requests until they time out, and the load must not grow
// without bound meanwhile (ticks that find no slot are counted, not sent).
const maxInFlight = 128

var httpClient = &http.Client{
	Timeout: 10 * time.Second,
	Transport: &http.Transport{
		MaxIdleConns:        maxInFlight,
		MaxIdleConnsPerHost: maxInFlight,
		IdleConnTimeout:     30 * time.Second,
	},
}

// load sends cfg.rate requests a second, each with a key and a replica
// picked at random, a fifth of them streamed, until stop is closed.
//
// It paces by the clock, not by ticks: each wake-up sends every request
// due since the start. A ticker alone drops the ticks its reader misses,
// and on a loaded machine (a load average of 20 on two cores) the loop is
// scheduled late often enough that a tenth of the rate was lost that way.
func (r *run) load(rng *rand.Rand, stop <-chan struct{}) {
	interval := time.Second / time.Duration(r.cfg.rate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	slots := make(chan struct{}, maxInFlight)
	var wg sync.WaitGroup
	defer wg.Wait()
	start, sent := time.Now(), int64(0)
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		for due := int64(time.Since(start) / interval); sent < due; sent++ {
			r.sendOne(rng, slots, &wg)
		}
	}
}

// sendOne picks a key and a replica and sends one request in the
// background, if a request slot is free.
func (r *run) sendOne(rng *rand.Rand, slots chan struct{}, wg *sync.WaitGroup) {
	name, gen, secret, concurrency, ok := r.pool.pick(rng, time.Now())
	if !ok {
		return
	}
	rep := r.c.replicas[rng.IntN(len(r.c.replicas))]
	stream := rng.IntN(5) == 0
	select {
	case slots <- struct{}{}:
	default:
		r.dropped.Add(1)
		return
	}
	wg.Go(func() {
		defer func() { <-slots }()
		r.h.add(send(rep, name, gen, secret, stream, concurrency))
	})
}

// send makes one chat completion through rep and records it. hold: the
// key has a concurrency limit, and the request asks the provider to hold
// it a while (holdUser), so that its requests overlap.
func send(rep *replica, name string, gen int, secret string, stream, hold bool) Record {
	body := `{"model":"` + model + `","max_tokens":16,"messages":[{"role":"user","content":"hello chaos"}]`
	if hold {
		body += `,"user":"` + holdUser + name + `"`
	}
	if stream {
		body += `,"stream":true,"stream_options":{"include_usage":true}`
	}
	body += "}"
	rec := Record{Type: TypeRequest, Key: name, Gen: gen, Replica: rep.name, Stream: stream, Start: time.Now()}
	req, _ := http.NewRequest(http.MethodPost, rep.url+"/gateway/openai/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := httpClient.Do(req)
	if err != nil {
		rec.End, rec.Code = time.Now(), "no answer"
		return rec
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	rec.End, rec.Status = time.Now(), resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		rec.Code = errorCode(data)
		return rec
	}
	if err != nil {
		rec.Code = "body cut: " + err.Error()
	}
	rec.Tokens = billedTokens(data, stream)
	return rec
}

type usage struct {
	Usage *struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
	} `json:"usage"`
}

// billedTokens is what the provider reported: the usage of the answer, or
// of a stream's usage chunk.
func billedTokens(data []byte, stream bool) int64 {
	if !stream {
		var u usage
		if json.Unmarshal(data, &u) == nil && u.Usage != nil {
			return u.Usage.PromptTokens + u.Usage.CompletionTokens
		}
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" {
			continue
		}
		var u usage
		if json.Unmarshal([]byte(line), &u) == nil && u.Usage != nil {
			return u.Usage.PromptTokens + u.Usage.CompletionTokens
		}
	}
	return 0
}

// errorCode is an OpenAI-shaped error's code, else its type.
func errorCode(data []byte) string {
	var e struct {
		Error struct {
			Code *string `json:"code"`
			Type string  `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(data, &e) != nil {
		return "not an OpenAI error"
	}
	if e.Error.Code != nil && *e.Error.Code != "" {
		return *e.Error.Code
	}
	return e.Error.Type
}

// finalProbe tries every key that should work on every replica once,
// after the faults: a key that none accepts is lost.
func (r *run) finalProbe() {
	slots := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, k := range r.pool.live(time.Now()) {
		gen := len(k.secrets) - 1
		for _, rep := range r.c.replicas {
			slots <- struct{}{}
			wg.Go(func() {
				defer func() { <-slots }()
				r.h.add(send(rep, k.name, gen, k.secrets[gen], false, false))
			})
		}
	}
	wg.Wait()
}
