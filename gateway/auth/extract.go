// Package auth authenticates gateway requests: it takes the key from the
// request, checks its format, finds it in the key index and verifies its
// secret (argon2id at most once per key per process), and refuses
// everything else with an OpenAI-style 401.
package auth

import (
	"errors"
	"net/http"
	"strings"
)

var (
	// errNoKey: the request carries no key at all.
	errNoKey = errors.New("no API key")
	// errBadHeader: a key header is present but not of a form we accept.
	errBadHeader = errors.New("malformed key header")
)

// ExtractKey returns the key a request carries, from `Authorization: Bearer
// <key>` (what OpenAI clients send) or `x-api-key: <key>` (what Anthropic
// clients send). A request that repeats a header, or sends the two headers
// with different keys, is refused rather than guessed at.
func ExtractKey(h http.Header) (string, error) {
	authz, hasAuthz := h["Authorization"]
	apiKey, hasAPIKey := h["X-Api-Key"]
	if len(authz) > 1 || len(apiKey) > 1 {
		return "", errBadHeader
	}
	var fromAuthz, fromAPIKey string
	if hasAuthz {
		scheme, token, ok := strings.Cut(strings.TrimSpace(authz[0]), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return "", errBadHeader
		}
		fromAuthz = strings.TrimSpace(token)
		if fromAuthz == "" {
			return "", errBadHeader
		}
	}
	if hasAPIKey {
		fromAPIKey = strings.TrimSpace(apiKey[0])
		if fromAPIKey == "" {
			return "", errBadHeader
		}
	}
	switch {
	case hasAuthz && hasAPIKey && fromAuthz != fromAPIKey:
		return "", errBadHeader
	case hasAuthz:
		return fromAuthz, nil
	case hasAPIKey:
		return fromAPIKey, nil
	default:
		return "", errNoKey
	}
}
