// Package metering is the contract between forwarding and per-key policy
// (docs/design.md, section 12.2), and the room of the request path that
// keeps it: for a request whose key has a policy, Serve reads the body
// (meterbody.go), asks the policy to admit what it reserves, and reads
// the usage out of the response as it passes (meterwriter.go,
// usagescan.go) to settle. gateway/proxy calls it; gateway/policy
// implements Meter. It imports neither.
package metering

import (
	"context"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"

	"github.com/codevector/codevector/gateway/httperr"
	"github.com/codevector/codevector/gateway/providers"
)

// Meter is per-key policy (docs/design.md, section 12.2), consulted only for
// requests whose key has one. gateway/policy implements it: it knows the
// authenticated key, its policy and the counters; this package knows the
// request and response bodies.
type Meter interface {
	// For returns the policy hook for this request, or nil when the
	// request's key has no policy. For nil the proxy does exactly what it
	// does without a Meter, and Serve is not called: nothing is buffered or parsed, so keys without
	// a policy do not pay for it.
	For(r *http.Request) RequestMeter
}

// RequestMeter is a Meter's view of one request.
type RequestMeter interface {
	// Admit runs once the model and the estimates are known, before the
	// request is forwarded. It returns either a refusal, which Serve
	// writes (see Refusal.Write) without forwarding, or settle, which
	// Serve calls exactly once when the response is over: completed, cut
	// by the client or the upstream, or failed. settle runs on the
	// request's goroutine before Serve returns.
	Admit(ctx context.Context, req Request) Admission
	// AllowsModel filters model listings (GET .../models: entries it
	// refuses are removed) and lookups (GET .../models/{id} of a refused id
	// is a 404 model_not_found, as the provider answers for models an
	// account cannot see, so a lookup agrees with the listing). See
	// MatchModel.
	AllowsModel(model string) bool
	// Refused counts a refusal Serve wrote itself, by reason (an
	// invalid body), as the Meter counts its own.
	Refused(reason string)
}

// Request is what Serve learnt about a request before forwarding it.
type Request struct {
	// Provider serves the request: the URL's provider, or the one its model
	// routes to.
	Provider string
	// Kind is Provider's API kind.
	Kind providers.Kind
	// Method and Path are the request's: Path is what follows
	// /gateway/{provider}, as "/v1/chat/completions".
	Method, Path string
	// Model is the body's top-level "model", or "" when it names none: a
	// GET, a body that is not a JSON object (multipart audio uploads), or a
	// JSON body without the field. The Meter decides what "" means for a
	// key with an allowlist; Serve never guesses one.
	Model string
	// Stream is the body's "stream": true.
	Stream bool
	// Billing says how the route is billed, so what can be reserved.
	Billing Billing
	// EstimatedInputTokens is a reservation, corrected when the request
	// settles: the body's size in bytes / 4, rounded up, with base64 media
	// (strings of more than 1 KiB in the base64 alphabet, data: URLs) at one
	// token per 32 bytes instead. JSON syntax, keys and parameters are
	// counted as if they were prompt, so for English text this is high
	// (providers count about 4 characters per token of the text alone);
	// base64 images cost far fewer tokens than 1 per 32 bytes, PDFs about
	// that many. 0 for requests without a JSON body. At most the body
	// limit / 4.
	EstimatedInputTokens int64
	// MaxOutputTokens is the most output one answer can be billed for:
	// the body's max_tokens, max_completion_tokens or max_output_tokens
	// (the largest if it has several) when it is below the model's maximum
	// output (Provider.MaxOutputTokens), else that maximum. 0 for routes
	// that bill no output.
	MaxOutputTokens int64
	// OutputBoundAsked says that the body named a maximum itself: the
	// Meter may lower the bound of a request that did not (Admission.
	// ClampOutputTokens), never one the client chose.
	OutputBoundAsked bool
	// Answers is how many answers the provider generates and bills: the
	// body's n or best_of (the larger), at least 1, at most 128.
	Answers int64
}

// Billing is how a route is billed, as far as the gateway can bound it
// before forwarding.
type Billing int

const (
	// BillingFree routes cost nothing: GETs (model listings), moderations,
	// Anthropic's count_tokens.
	BillingFree Billing = iota
	// BillingTokens routes generate: billed for input and up to
	// MaxOutputTokens × Answers of output (chat and legacy completions,
	// responses, Anthropic's messages).
	BillingTokens
	// BillingInput routes bill input only (embeddings).
	BillingInput
	// BillingUnknown routes have a price the gateway cannot bound from
	// the body: uploads (multipart), images, audio and any route a
	// providers file adds. A Meter refuses them for keys whose tokens or
	// dollars are counted rather than guess.
	BillingUnknown
)

// Admission is a Meter's answer to Admit: a refusal, or settle.
type Admission struct {
	// Refusal, if set, is written to the client instead of forwarding.
	Refusal *Refusal
	// Settle, when the request is admitted, is called exactly once when
	// the response is over.
	Settle func(Usage)
	// ClampOutputTokens, when positive, is a smaller bound per answer
	// than Request.MaxOutputTokens, for a request that named none and
	// would not fit whole: Serve writes it into the body (the route's
	// own field) and tells the client in the ClampedHeader response
	// header.
	ClampOutputTokens int64
}

// ClampedHeader tells a client that the gateway bounded the answer's
// length to fit the key's budget or token limit: its value is the bound
// written into the request (in tokens, per answer).
const ClampedHeader = "X-Codevector-Max-Output-Tokens"

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
	// Estimated says that a count is a guess because the
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

// Hop is forwarding as Serve sees it: the proxy's side of one request
// that it has checked (its provider exists and serves the route) and
// hands to Serve because its key has a policy.
type Hop interface {
	// ReadBody reads the whole request body, up to the gateway's limit.
	// false means it could not, and the Hop has answered the client
	// (413, 400, or nothing for a client gone).
	ReadBody() ([]byte, bool)
	// StreamBody lets a body that is not read (a GET's, a multipart
	// upload) stream through, cut at the gateway's limit.
	StreamBody()
	// Route is the provider serving a request for model: the one model
	// routes to, else the URL's ("" routes nowhere).
	Route(model string) *providers.Provider
	// Forward sends the request upstream, with body instead of its own
	// when body is not nil, and writes the response to w.
	Forward(w http.ResponseWriter, body []byte)
}

// Serve is the metering room of the request path for a request whose key
// has a policy (rm): it reads the body, asks rm to admit the request,
// and forwards it through hop and a meterWriter that settles once the
// response is over. w is the writer that answers the client; rest is
// the path after /gateway/{provider}.
//
// Every body it forwards is what it metered: a body is read and parsed as
// JSON whatever its Content-Type (providers and most HTTP stacks parse it
// anyway, so a JSON body sent as text/plain must cost what it asks for),
// and one that is not exactly one valid JSON object is refused, never
// forwarded. Only multipart uploads are not read; they are BillingUnknown.
func Serve(w http.ResponseWriter, r *http.Request, rest string, rm RequestMeter, hop Hop) {
	mw := &meterWriter{rec: w}
	if r.Method == http.MethodGet {
		if id, ok := modelLookup(rest); ok && !rm.AllowsModel(id) {
			httperr.Write(w, http.StatusNotFound, httperr.TypeInvalidRequest, "model_not_found",
				fmt.Sprintf("The model %q does not exist or you do not have access to it.", truncate(id, 128)))
			return
		}
		if isModelList(rest) {
			mw.allows = rm.AllowsModel
		}
	}
	req, body, f, ok := readRequest(w, r, rest, rm, hop)
	if !ok {
		return
	}
	adm := rm.Admit(r.Context(), req)
	if adm.Refusal != nil {
		adm.Refusal.Write(w)
		return
	}
	mw.req, mw.settle, mw.free = req, adm.Settle, req.Billing == BillingFree
	if body != nil {
		body = editBody(w, body, &f, adm, mw)
	}
	// The response must be readable: a client's Accept-Encoding: gzip would
	// let the provider compress it. Clients decode either.
	r.Header.Del("Accept-Encoding")

	completed := false
	defer func() {
		// Also on the panic with which ReverseProxy aborts a cut response:
		// the request is settled before the panic goes on.
		mw.finish(!completed)
	}()
	hop.Forward(mw, body)
	completed = true
}

// readRequest reads what Admit is asked: the body's metered fields (body
// nil when it is not read), the provider serving the request and what it
// may bill. false means it answered the client itself.
func readRequest(w http.ResponseWriter, r *http.Request, rest string, rm RequestMeter, hop Hop) (req Request, body []byte, f requestFields, ok bool) {
	req = Request{Method: r.Method, Path: rest, Billing: billingOf(r.Method, rest), Answers: 1}
	switch {
	case !hasBody(r.Method):
		hop.StreamBody()
	case isMultipart(r.Header["Content-Type"]):
		req.Billing = BillingUnknown
		hop.StreamBody()
	default:
		if body, ok = hop.ReadBody(); !ok {
			return req, nil, f, false
		}
		var err error
		if f, err = parseMetered(body); err != nil {
			rm.Refused("invalid_body")
			httperr.Write(w, http.StatusBadRequest, httperr.TypeInvalidRequest, "invalid_body", err.Error()+
				": this API key's policy is checked against the body, so it must be one JSON object, with each key once, whatever its Content-Type.")
			return req, nil, f, false
		}
		req.Model, req.Stream = f.model, f.stream
		req.EstimatedInputTokens = estimateInputTokens(body)
	}
	prov := hop.Route(req.Model)
	req.Provider, req.Kind = prov.Name, prov.Kind
	if body != nil {
		switch req.Billing {
		case BillingTokens:
			req.MaxOutputTokens = prov.MaxOutputTokens(f.model)
			if f.hasMaxOutput {
				req.MaxOutputTokens, req.OutputBoundAsked = min(req.MaxOutputTokens, f.maxOutput), true
			}
			req.Answers = max(f.answers, 1)
		case BillingFree:
			req.EstimatedInputTokens = 0
		}
	}
	return req, body, f, true
}

// editBody returns body as it is forwarded: with the output bound adm
// clamped to (and the ClampedHeader that says so), and asking a stream
// for the usage the client did not ask for, which mw then hides.
func editBody(w http.ResponseWriter, body []byte, f *requestFields, adm Admission, mw *meterWriter) []byte {
	req := mw.req
	if adm.ClampOutputTokens > 0 && adm.ClampOutputTokens < req.MaxOutputTokens && !req.OutputBoundAsked {
		body = setOutputBound(body, f, outputField(req.Path), adm.ClampOutputTokens)
		w.Header().Set(ClampedHeader, strconv.FormatInt(adm.ClampOutputTokens, 10))
		mw.req.MaxOutputTokens = adm.ClampOutputTokens
	}
	if f.stream && strings.HasSuffix(req.Path, "/completions") && !f.includeUsage {
		// Chat and legacy completions report usage in a stream only
		// when asked; ask, and hide the answer from a client that did
		// not (meterWriter.strip).
		if edited, ok := injectIncludeUsage(body, f); ok {
			body, mw.strip = edited, true
		}
	}
	return body
}

// hasBody reports the methods whose body a provider reads.
func hasBody(method string) bool {
	return method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch
}

// billingOf classifies a route by its path (what follows /gateway/
// {provider}), whatever the provider's kind: a routes: entry of a custom
// provider that ends in /chat/completions is billed as one.
func billingOf(method, rest string) Billing {
	switch {
	case !hasBody(method):
		return BillingFree
	case freeRoute(rest):
		return BillingFree
	case strings.HasSuffix(rest, "/completions"), // chat and legacy
		strings.HasSuffix(rest, "/responses"),
		strings.HasSuffix(rest, "/messages"):
		return BillingTokens
	case strings.HasSuffix(rest, "/embeddings"):
		return BillingInput
	default:
		return BillingUnknown
	}
}

// outputField is the body field that bounds an answer's length on a
// BillingTokens route: max_completion_tokens for chat completions
// (OpenAI's reasoning models refuse max_tokens there), max_output_tokens
// for responses, max_tokens for legacy completions and Anthropic's
// messages.
func outputField(rest string) string {
	switch {
	case strings.HasSuffix(rest, "/chat/completions"):
		return "max_completion_tokens"
	case strings.HasSuffix(rest, "/responses"):
		return "max_output_tokens"
	default:
		return "max_tokens"
	}
}

// setOutputBound returns body with field: tokens added as its last member
// (the body names no bound, checked by the caller), and f rescanned for
// the edited body.
func setOutputBound(body []byte, f *requestFields, field string, tokens int64) []byte {
	member := strconv.Quote(field) + ":" + strconv.FormatInt(tokens, 10)
	if !f.empty {
		member = "," + member
	}
	edited := splice(body, f.end, f.end, member)
	if g, err := scanRequest(edited); err == nil {
		*f = g
	}
	return edited
}

func isMultipart(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	mediaType, _, _ := strings.Cut(contentType[0], ";")
	return strings.HasPrefix(strings.ToLower(strings.TrimSpace(mediaType)), "multipart/")
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
