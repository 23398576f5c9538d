package metering

import (
	"bytes"
	"mime"
	"net/http"
	"strconv"

	"github.com/codevector/codevector/gateway/httperr"
)

// Bounds on what a meterWriter holds back from the client.
const (
	// maxHeldEvent bounds an event held to be inspected before it is
	// forwarded (only when usage is hidden, see meterWriter.strip). Chat
	// chunks are a few hundred bytes; a larger event is forwarded as it
	// comes, unedited.
	maxHeldEvent = 1 << 20
	// maxModelList bounds a model listing read to be filtered. OpenAI's is
	// about 10 KiB.
	maxModelList = 8 << 20
)

type responseMode uint8

const (
	modePass responseMode = iota // forwarded unread
	modeJSON                     // scanned for usage as it passes
	modeSSE                      // event stream, scanned event by event
	modeList                     // a model listing, held until complete and filtered
)

// meterWriter is the ResponseWriter a metered request's ReverseProxy writes
// to. It reads usage out of the response as it passes, without delaying
// it: every Write is forwarded before Write returns, except the parts of an
// event still incomplete when strip is set (a client cannot use half an
// event anyway) and model listings (read whole, then filtered).
type meterWriter struct {
	rec    http.ResponseWriter
	req    Request
	settle func(Usage)
	// free routes settle with zero tokens and are not scanned.
	free bool
	// allows is set for model listings: entries it refuses are removed.
	allows func(string) bool
	// strip is set when Serve asked for stream usage that the client
	// did not: the chunk that reports it is dropped, and the "usage":null
	// that OpenAI then adds to every other chunk removed, so the client
	// receives the stream it asked for, byte for byte.
	strip bool

	status int
	mode   responseMode
	sse    sseScanner // its json scanner also serves modeJSON
	offset int        // modeJSON: bytes scanned so far
	// held is the event being held back (strip), or the model listing.
	held []byte
	// passEvent: the current event outgrew maxHeldEvent and is forwarded
	// as it comes.
	passEvent bool
	// listTooLarge: the model listing outgrew maxModelList.
	listTooLarge bool
	// failed: a write to the client failed (it went away).
	failed bool
	// streamEnded: the stream's final event reached the client.
	streamEnded bool
}

func (w *meterWriter) Header() http.Header { return w.rec.Header() }

// Unwrap gives http.ResponseController the writer below (Hijack,
// deadlines).
func (w *meterWriter) Unwrap() http.ResponseWriter { return w.rec }

// FlushError is what ReverseProxy's flushes reach. A listing being held
// must not flush: that would send its headers before the filtered body.
func (w *meterWriter) FlushError() error {
	if w.mode == modeList {
		return nil
	}
	return http.NewResponseController(w.rec).Flush()
}

func (w *meterWriter) WriteHeader(code int) {
	if w.status != 0 || code < 200 && code != http.StatusSwitchingProtocols {
		w.rec.WriteHeader(code) // informational, or superfluous: net/http's to judge
		return
	}
	w.status = code
	h := w.rec.Header()
	switch {
	case w.allows != nil && code == http.StatusOK:
		// Whatever it is, an unfiltered listing must not reach the client;
		// writeList checks its type.
		w.mode = modeList
		return
	case code/100 != 2 || w.free || !identityEncoded(h):
	case isEventStream(h["Content-Type"]):
		w.mode = modeSSE
		if w.strip {
			h.Del("Content-Length") // a length would count the bytes removed
		}
	case IsJSON(h["Content-Type"]):
		w.mode = modeJSON
	}
	w.rec.WriteHeader(code)
}

func identityEncoded(h http.Header) bool {
	ce := h["Content-Encoding"]
	return len(ce) == 0 || len(ce) == 1 && (ce[0] == "" || ce[0] == "identity")
}

func isEventStream(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	mediaType, _, _ := mime.ParseMediaType(contentType[0])
	return mediaType == "text/event-stream"
}

func (w *meterWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	switch w.mode {
	case modeJSON:
		w.sse.json.feed(b, w.offset)
		w.offset += len(b)
	case modeSSE:
		if w.strip {
			return w.writeStripped(b)
		}
		for rest := b; len(rest) > 0; {
			n, _ := w.sse.feed(rest)
			rest = rest[n:]
		}
	case modeList:
		if !w.listTooLarge && len(w.held)+len(b) <= maxModelList {
			w.held = append(w.held, b...)
		} else {
			w.listTooLarge, w.held = true, nil
		}
		return len(b), nil
	}
	return w.forward(b)
}

func (w *meterWriter) forward(b []byte) (int, error) {
	n, err := w.rec.Write(b)
	if err != nil {
		w.failed = true
	} else if bytes.Contains(b, sseDone) || bytes.Contains(b, sseMessageStop) {
		w.streamEnded = true
	}
	return n, err
}

// sseDone and sseMessageStop end an OpenAI and an Anthropic stream. A
// client that has received one may close the connection before the gateway
// has seen the upstream's end; the response was complete all the same.
var (
	sseDone        = []byte("data: [DONE]")
	sseMessageStop = []byte("event: message_stop")
)

// writeStripped forwards complete events, holding back an incomplete one
// until its end arrives.
func (w *meterWriter) writeStripped(b []byte) (int, error) {
	for rest := b; len(rest) > 0; {
		n, ended := w.sse.feed(rest)
		part := rest[:n]
		rest = rest[n:]
		if w.passEvent {
			if _, err := w.forward(part); err != nil {
				return 0, err
			}
		} else {
			w.held = append(w.held, part...)
			if len(w.held) > maxHeldEvent {
				if _, err := w.forward(w.held); err != nil {
					return 0, err
				}
				w.held, w.passEvent = w.held[:0], true
			}
		}
		if ended {
			if !w.passEvent {
				if err := w.emitEvent(); err != nil {
					return 0, err
				}
			}
			w.held, w.passEvent = w.held[:0], false
		}
	}
	return len(b), nil
}

// emitEvent forwards the held event as the client would have received it
// had it not been asked for usage.
func (w *meterWriter) emitEvent() error {
	ev := w.sse.last
	if ev.usageObject && ev.choicesEmpty {
		return nil // the usage chunk
	}
	out := w.held
	if s := ev.usageNull; s[1] > s[0] && s[1] <= len(out) {
		out = append(out[:s[0]], out[s[1]:]...)
	}
	_, err := w.forward(out)
	return err
}

// finish ends the response and settles the request. aborted: ReverseProxy
// gave up mid-response (it is panicking), so nothing more is written.
func (w *meterWriter) finish(aborted bool) {
	if !aborted && !w.failed {
		switch {
		case w.mode == modeList:
			w.writeList()
		case len(w.held) > 0:
			// A stream that ended in the middle of an event.
			if _, err := w.forward(w.held); err == nil {
				_ = w.FlushError()
			}
		}
	}
	if w.mode == modeJSON {
		w.sse.json.end(w.offset)
	}
	if settle := w.settle; settle != nil {
		w.settle = nil
		settle(w.usage(aborted))
	}
}

// usage is what the request settles with; see Usage.
func (w *meterWriter) usage(aborted bool) Usage {
	u := Usage{Model: w.req.Model, Status: w.status, Complete: w.streamEnded || !aborted && !w.failed}
	if w.free || w.status/100 != 2 {
		return u
	}
	counts := &w.sse.json.usage
	in, inOK := counts.input()
	out, outOK := counts.output()
	u.InputTokens, u.OutputTokens = in, out
	if !inOK {
		u.InputTokens, u.Estimated = w.req.EstimatedInputTokens, true
	}
	// Text delivered, for a response without usage or cut before it
	// reported the whole output: bytes / 4, JSON escapes included, so
	// slightly high for English; the provider may have generated more than
	// reached the client before the upstream request was cancelled. A
	// complete response that reports input but no output has none
	// (embeddings).
	delivered := ceilDiv(w.sse.json.text, bytesPerToken)
	switch {
	case !outOK && (!inOK || !u.Complete), !u.Complete && delivered > out:
		u.OutputTokens, u.Estimated = delivered, true
	}
	return u
}

// writeList writes the held model listing without the models the key may
// not use, or a 502 when it cannot be read.
func (w *meterWriter) writeList() {
	h := w.rec.Header()
	var body []byte
	ok := !w.listTooLarge && identityEncoded(h) && IsJSON(h["Content-Type"])
	if ok {
		body, ok = filterModelList(w.held, w.allows)
	}
	if !ok {
		httperr.Write(w.rec, http.StatusBadGateway, httperr.TypeUpstream, "upstream_invalid",
			"the provider's model list could not be read to filter it for this key")
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.rec.WriteHeader(w.status)
	_, _ = w.forward(body)
}

// filterModelList removes from the top-level "data" array of a model
// listing (OpenAI's and Anthropic's shape) the entries whose "id" allow
// refuses. The rest of the body is unchanged; Anthropic's first_id and
// last_id, cursors for the next page, stay valid as cursors.
func filterModelList(b []byte, allow func(string) bool) ([]byte, bool) {
	start, end, ok := memberValue(b, "data")
	if !ok || b[start] != '[' {
		return nil, false
	}
	out := make([]byte, 0, len(b))
	out = append(out, b[:start+1]...)
	kept := 0
	for i := skipSpace(b, start+1); b[i] != ']'; {
		elemEnd := skipValue(b, i)
		if elemEnd < 0 {
			return nil, false
		}
		if idStart, idEnd, ok := memberValue(b[i:elemEnd], "id"); ok && b[i+idStart] == '"' {
			if id := decodeString(b[i+idStart : i+idEnd]); id != "" && allow(id) {
				if kept > 0 {
					out = append(out, ',')
				}
				out = append(out, b[i:elemEnd]...)
				kept++
			}
		}
		i = skipSpace(b, elemEnd)
		if i >= len(b) {
			return nil, false
		}
		if b[i] == ',' {
			i = skipSpace(b, i+1)
			if i >= len(b) {
				return nil, false
			}
		} else if b[i] != ']' {
			return nil, false
		}
	}
	return append(out, b[end-1:]...), true
}

// memberValue finds the value of the top-level key of the JSON object b:
// b[start:end].
func memberValue(b []byte, key string) (start, end int, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return 0, 0, false
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		keyStart := i
		if i = skipString(b, i); i < 0 {
			return 0, 0, false
		}
		k := b[keyStart:i]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return 0, 0, false
		}
		valStart := skipSpace(b, i+1)
		if i = skipValue(b, valStart); i < 0 {
			return 0, 0, false
		}
		if len(k) == len(key)+2 && string(k[1:len(k)-1]) == key {
			return valStart, i, true
		}
		if i = skipSpace(b, i); i >= len(b) || b[i] != ',' {
			return 0, 0, false
		}
		i = skipSpace(b, i+1)
	}
	return 0, 0, false
}
