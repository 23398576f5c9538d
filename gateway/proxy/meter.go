package proxy

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/codevector/codevector/gateway/httperr"
)

// DefaultOutputTokens is the output a metered request is assumed to ask for
// when its body names no max_tokens (Options.DefaultOutputTokens).
const DefaultOutputTokens = 4096

// Meter is per-key policy (DESIGN.md section 12), consulted only for
// requests whose key has one. The gateway server implements it: it knows
// the authenticated key, its policy and the counters; the proxy knows the
// request and response bodies.
type Meter interface {
	// For returns the policy hook for this request, or nil when the
	// request's key has no policy. For nil the proxy does exactly what it
	// does without a Meter: nothing is buffered or parsed, so keys without
	// a policy do not pay for it.
	For(r *http.Request) RequestMeter
}

// RequestMeter is a Meter's view of one request.
type RequestMeter interface {
	// Admit runs once the model and the estimates are known, before the
	// request is forwarded. It returns either a refusal, which the proxy
	// writes (see Refusal.Write) without forwarding, or settle, which the
	// proxy calls exactly once when the response is over: completed, cut
	// by the client or the upstream, or failed. settle runs on the
	// request's goroutine before ServeHTTP returns.
	Admit(ctx context.Context, req Request) (settle func(Usage), refusal *Refusal)
	// AllowsModel filters model listings (GET .../models: entries it
	// refuses are removed) and lookups (GET .../models/{id} of a refused id
	// is a 404 model_not_found, as the provider answers for models an
	// account cannot see, so a lookup agrees with the listing). See
	// MatchModel.
	AllowsModel(model string) bool
}

// Request is what the proxy learnt about a request before forwarding it.
type Request struct {
	// Provider serves the request: the URL's provider, or the one its model
	// routes to.
	Provider string
	// Kind is Provider's API kind.
	Kind Kind
	// Method and Path are the request's: Path is what follows
	// /gateway/{provider}, as "/v1/chat/completions".
	Method, Path string
	// Model is the body's top-level "model", or "" when it names none: a
	// GET, a body that is not a JSON object (multipart audio uploads), or a
	// JSON body without the field. The Meter decides what "" means for a
	// key with an allowlist; the proxy never guesses one.
	Model string
	// Stream is the body's "stream": true.
	Stream bool
	// EstimatedInputTokens is a reservation, corrected when the request
	// settles: the body's size in bytes / 4, rounded up, with base64 media
	// (strings of more than 1 KiB in the base64 alphabet, data: URLs) at one
	// token per 32 bytes instead. JSON syntax, keys and parameters are
	// counted as if they were prompt, so for English text this is high
	// (providers count about 4 characters per token of the text alone);
	// base64 images cost far fewer tokens than 1 per 32 bytes, PDFs about
	// that many. 0 for requests without a JSON body.
	EstimatedInputTokens int64
	// MaxOutputTokens is the body's max_tokens, max_completion_tokens or
	// max_output_tokens (the largest if it has several), or
	// Options.DefaultOutputTokens when it has none. 0 for requests without
	// a JSON body.
	MaxOutputTokens int64
}

// Usage is what a request used, given to settle.
type Usage struct {
	// Model is Request.Model.
	Model string
	// Status is the response status sent to the client (0 if none was).
	Status int
	// InputTokens and OutputTokens are the provider's counts when it
	// reported them. Anthropic's cache_creation_input_tokens and
	// cache_read_input_tokens are counted as input; OpenAI's cached and
	// reasoning tokens are already inside its prompt and completion counts.
	// Both are 0 for error responses (status not 2xx) and for routes that
	// cost nothing (GETs, moderations, Anthropic's count_tokens).
	InputTokens, OutputTokens int64
	// Complete is false when the response was cut: the client went away or
	// the upstream failed mid-body.
	Complete bool
	// Estimated says that a count is the proxy's guess because the
	// provider's was not seen (a cut stream, a provider that does not
	// report usage): input is then Request.EstimatedInputTokens and output
	// the bytes of text delivered / 4.
	Estimated bool
}

// MatchModel reports whether model matches one of the allowlist's globs,
// with path.Match semantics: "*" matches any run of characters but "/",
// "?" one character. An empty model matches nothing; a malformed glob
// matches nothing.
func MatchModel(globs []string, model string) bool {
	if model == "" {
		return false
	}
	for _, g := range globs {
		if ok, err := path.Match(g, model); ok && err == nil {
			return true
		}
	}
	return false
}

// serveMetered is serve for a request whose key has a policy: it reads the
// body, asks rm to admit the request, and forwards it through a
// meterWriter that settles once the response is over.
func (p *Proxy) serveMetered(rec *responseRecorder, w http.ResponseWriter, r *http.Request, st *requestState, rest string, rm RequestMeter) {
	req := Request{Method: r.Method, Path: rest}
	mw := &meterWriter{rec: rec, free: r.Method != http.MethodPost || freeRoute(rest)}

	if r.Method == http.MethodGet {
		if id, ok := modelLookup(rest); ok && !rm.AllowsModel(id) {
			httperr.Write(rec, http.StatusNotFound, httperr.TypeInvalidRequest, "model_not_found",
				fmt.Sprintf("The model %q does not exist or you do not have access to it.", truncate(id, 128)))
			return
		}
		if isModelList(rest) {
			mw.allows = rm.AllowsModel
		}
	}

	if r.Method == http.MethodPost && isJSON(r.Header["Content-Type"]) {
		body, err := readBody(r, p.maxBody)
		if err != nil {
			p.bodyError(rec, r, err)
			return
		}
		f, err := scanRequest(body)
		if err != nil {
			httperr.Write(rec, http.StatusBadRequest, httperr.TypeInvalidRequest, "invalid_body", err.Error())
			return
		}
		st.model = f.model
		if to := st.from.route(f.model); to != nil {
			st.to = to
		}
		req.Model, req.Stream = f.model, f.stream
		req.EstimatedInputTokens = estimateInputTokens(body)
		req.MaxOutputTokens = f.maxOutput
		if req.MaxOutputTokens <= 0 {
			req.MaxOutputTokens = p.defaultOutput
		}
		if f.stream && strings.HasSuffix(rest, "/completions") && !f.includeUsage {
			// Chat and legacy completions report usage in a stream only
			// when asked; ask, and hide the answer from a client that did
			// not (meterWriter.strip).
			if edited, ok := injectIncludeUsage(body, &f); ok {
				body, mw.strip = edited, true
			}
		}
		r.Body = &bufferedBody{Reader: bytes.NewReader(body), data: body}
		r.ContentLength = int64(len(body))
	} else if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		r.Body = http.MaxBytesReader(w, r.Body, p.maxBody)
	}
	req.Provider, req.Kind = st.to.name, st.to.provider.Kind

	settle, refusal := rm.Admit(r.Context(), req)
	if refusal != nil {
		refusal.Write(rec)
		return
	}
	mw.req, mw.settle = req, settle
	// The response must be readable: a client's Accept-Encoding: gzip would
	// let the provider compress it. Clients decode either.
	r.Header.Del("Accept-Encoding")

	completed := false
	defer func() {
		// Also on the panic with which ReverseProxy aborts a cut response:
		// the request is settled before the panic goes on.
		mw.finish(!completed)
	}()
	p.forward(mw, w, r, st.to)
	completed = true
}

// freeRoute reports routes that cost no tokens: their responses carry no
// usage and settle with zero rather than an estimate.
func freeRoute(rest string) bool {
	return strings.HasSuffix(rest, "/moderations") || strings.HasSuffix(rest, "/messages/count_tokens")
}

// isModelList reports a model listing path (OpenAI's and Anthropic's GET
// /v1/models, or /models under a baseURL that ends in /v1).
func isModelList(rest string) bool {
	return strings.HasSuffix(rest, "/models")
}

// modelLookup returns the id of GET .../models/{id}.
func modelLookup(rest string) (string, bool) {
	i := strings.LastIndexByte(rest, '/')
	if i < 0 || i == len(rest)-1 || !strings.HasSuffix(rest[:i], "/models") {
		return "", false
	}
	return rest[i+1:], true
}
