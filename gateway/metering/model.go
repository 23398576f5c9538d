package metering

import (
	"bytes"
	"encoding/json"
	"strings"
)

// RequestModel returns the top-level "model" string of a JSON object body,
// or "" when there is none or the body is not a JSON object.
//
// It scans instead of unmarshalling: it allocates nothing but the returned
// string, skips nested values without decoding them and stops at the first
// top-level "model" key (a body with the key twice is routed by the first;
// the provider is whatever the client could have named in the URL anyway).
// It does not validate the JSON: a malformed body is forwarded as is and the
// upstream rejects it.
func RequestModel(b []byte) string {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return ""
	}
	i++
	for {
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != '"' {
			return "" // '}' of an object without "model", or not JSON
		}
		keyStart := i
		i = skipString(b, i)
		if i < 0 {
			return ""
		}
		key := b[keyStart:i]
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ':' {
			return ""
		}
		i = skipSpace(b, i+1)
		if isModelKey(key) {
			if i >= len(b) || b[i] != '"' {
				return ""
			}
			end := skipString(b, i)
			if end < 0 {
				return ""
			}
			return decodeString(b[i:end])
		}
		if i = skipValue(b, i); i < 0 {
			return ""
		}
		i = skipSpace(b, i)
		if i >= len(b) || b[i] != ',' {
			return ""
		}
		i++
	}
}

// isModelKey compares a quoted key with "model", decoding escapes (as in
// "\u006dodel") only in the rare case the key has any.
// IsJSON reports a Content-Type of application/json.
func IsJSON(contentType []string) bool {
	if len(contentType) == 0 {
		return false
	}
	mediaType, _, _ := strings.Cut(contentType[0], ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), "application/json")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

func isModelKey(quoted []byte) bool {
	if bytes.IndexByte(quoted, '\\') < 0 {
		return string(quoted) == `"model"`
	}
	return decodeString(quoted) == "model"
}

// decodeString returns the value of a quoted JSON string.
func decodeString(quoted []byte) string {
	inner := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(inner, '\\') < 0 {
		return string(inner)
	}
	var s string
	if err := json.Unmarshal(quoted, &s); err != nil {
		return ""
	}
	return s
}

func skipSpace(b []byte, i int) int {
	for i < len(b) {
		switch b[i] {
		case ' ', '\t', '\r', '\n':
			i++
		default:
			return i
		}
	}
	return i
}

// skipString returns the index after the string starting at b[i] == '"', or
// -1 if it is not terminated. A quote is escaped when an odd number of
// backslashes precede it.
func skipString(b []byte, i int) int {
	j := i + 1
	for {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return -1
		}
		q := j + k
		backslashes := 0
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			backslashes++
		}
		if backslashes%2 == 0 {
			return q + 1
		}
		j = q + 1
	}
}

// skipValue returns the index after the value starting at b[i], or -1.
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return -1
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				if i = skipString(b, i); i < 0 {
					return -1
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return -1
	default:
		// A number, true, false or null: up to the next delimiter.
		for i < len(b) {
			switch b[i] {
			case ',', '}', ']', ' ', '\t', '\r', '\n':
				return i
			}
			i++
		}
		return i
	}
}
