// Package httperr writes the OpenAI-style JSON error bodies that every
// gateway response uses when the gateway itself answers instead of the
// provider:
//
//	{"error":{"message":"...","type":"invalid_request_error","code":"invalid_api_key"}}
//
// Clients of the gateway are OpenAI and Anthropic SDKs; both surface
// error.message to the user, so messages are written for that reader.
package httperr

import (
	"encoding/json"
	"net/http"
	"strconv"
)

// Error types, the "type" field of the body. They follow OpenAI's vocabulary
// so SDKs map them to their usual exception classes.
const (
	// TypeInvalidRequest is a problem with the client's request: bad key,
	// unknown provider, body too large.
	TypeInvalidRequest = "invalid_request_error"
	// TypeAPI is a fault inside the gateway.
	TypeAPI = "api_error"
	// TypeUpstream is a provider that could not be reached or did not answer
	// in time.
	TypeUpstream = "upstream_error"
)

// body is the wire shape. Code is a pointer so an empty code is written as
// null, as OpenAI does, rather than as "".
type body struct {
	Error detail `json:"error"`
}

type detail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Code    *string `json:"code"`
}

// Write writes {"error":{"message":msg,"type":typ,"code":code}} with the
// given status, Content-Type application/json; charset=utf-8 and
// X-Content-Type-Options: nosniff. An empty code is written as null.
//
// Headers already set on w for a different body (Content-Encoding,
// Content-Length, ETag) are removed so they cannot describe this one.
func Write(w http.ResponseWriter, status int, typ, code, msg string) {
	d := detail{Message: msg, Type: typ}
	if code != "" {
		d.Code = &code
	}
	// Marshalling a struct of strings cannot fail.
	b, _ := json.Marshal(body{Error: d})
	b = append(b, '\n')

	h := w.Header()
	h.Del("Content-Encoding")
	h.Del("ETag")
	h.Del("Last-Modified")
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}
