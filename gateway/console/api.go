package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/codevector/codevector/gateway/httperr"
)

// apiError is an error answer of the console API, in the gateway's usual
// OpenAI-style body; Message is written for the person at the console.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Message }

func writeError(w http.ResponseWriter, e *apiError) {
	typ := httperr.TypeInvalidRequest
	if e.Status >= 500 {
		typ = httperr.TypeAPI
	}
	httperr.Write(w, e.Status, typ, e.Code, e.Message)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// listResponse is the body of GET /api/v1/apikeys. Owners (admins only)
// lists every owner, for a filter.
type listResponse struct {
	Items  []keyItem `json:"items"`
	Owners []string  `json:"owners,omitempty"`
}

// serveList: GET /api/v1/apikeys[?owner=...]. Metadata only, never a key.
func (c *Console) serveList(w http.ResponseWriter, r *http.Request) {
	id := identityFrom(r.Context())
	items, owners := c.listKeys(id, r.URL.Query().Get("owner"))
	if items == nil {
		items = []keyItem{}
	}
	writeJSON(w, http.StatusOK, listResponse{Items: items, Owners: owners})
}

// serveCreate: POST /api/v1/apikeys. The response is the one place the key
// ever travels; it is not logged and not cached (noStore).
func (c *Console) serveCreate(w http.ResponseWriter, r *http.Request) {
	var req createRequest
	if aerr := decodeJSON(w, r, &req, createFields); aerr != nil {
		writeError(w, aerr)
		return
	}
	item, plain, aerr := c.createKey(r.Context(), identityFrom(r.Context()), req)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, http.StatusCreated, createResponse{APIKey: item, Key: plain.Reveal()})
}

// serveRevoke: POST /api/v1/apikeys/{name}/revoke. Revoking twice is fine.
// It answers once every gateway replica refuses the key (200), or when
// Options.ConfirmTimeout has passed without that (202); the body's
// "revocation" says which.
func (c *Console) serveRevoke(w http.ResponseWriter, r *http.Request) {
	// The body is optional ("{}"), but must be JSON if present: the CSRF
	// guard has already insisted on the content type.
	var (
		ignored struct{}
		resp    revokeResponse
	)
	if r.ContentLength != 0 {
		if aerr := decodeJSON(w, r, &ignored, "none"); aerr != nil {
			writeError(w, aerr)
			return
		}
	}
	nn, aerr := c.keyRef(r)
	if aerr == nil {
		resp, aerr = c.revokeKey(r.Context(), identityFrom(r.Context()), nn)
	}
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	// 202 when some replica has not confirmed in time: the key is revoked,
	// but not every replica is known to refuse it yet.
	status := http.StatusOK
	if !resp.Revocation.Confirmed {
		status = http.StatusAccepted
	}
	writeJSON(w, status, resp)
}

// serveSetPolicy: POST /api/v1/apikeys/{name}/policy, for admins. The body
// is the whole policy the key should have (policyRequest).
func (c *Console) serveSetPolicy(w http.ResponseWriter, r *http.Request) {
	var req policyRequest
	if aerr := decodeJSON(w, r, &req, policyFields); aerr != nil {
		writeError(w, aerr)
		return
	}
	item, aerr := c.setPolicy(r.Context(), identityFrom(r.Context()), mux.Vars(r)["name"], req)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, item)
}

// createFields are the fields of createRequest, for error messages.
const createFields = "name, displayName, expiresAt, ttl, " + policyFields

// decodeJSON reads one small JSON object and refuses unknown fields, so a
// typo ("expires") is an error rather than a key without the expiry asked
// for. known lists the fields there are, for that error.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, known string) *apiError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 16<<10))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("more than one JSON value")
		}
	}
	if err == nil {
		return nil
	}
	if errors.Is(err, io.EOF) {
		return nil // an empty body means all defaults
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		msg = "unknown field " + f + " (known fields: " + known + ")"
	}
	return &apiError{http.StatusBadRequest, "invalid_json", fmt.Sprintf("The request body is not valid: %s.", msg)}
}
