package metering

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
)

// requestFields are the top-level fields of a metered request's JSON body.
type requestFields struct {
	model  string
	stream bool
	// maxOutput is the largest of max_tokens, max_completion_tokens and
	// max_output_tokens, saturated at maxTokenCount; hasMaxOutput says the
	// body named one (null counts as not naming it).
	maxOutput    int64
	hasMaxOutput bool
	// answers is the larger of n and best_of, 0 when the body names
	// neither: how many answers the provider generates, and bills.
	answers int64
	// includeUsage is stream_options.include_usage: true.
	includeUsage bool
	// streamOptions is the span of stream_options' value, [0,0) if absent.
	streamOptions [2]int
	// usageOption is the span of stream_options.include_usage's value,
	// [0,0) if absent.
	usageOption [2]int
	// end is the index of the body's closing '}'; empty says the object
	// has no members.
	end   int
	empty bool
}

// meteredKeys are the top-level keys scanRequest reads.
var meteredKeys = [...]string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens", "n", "best_of"}

// maxAnswers bounds n and best_of: OpenAI's own maximum for both.
const maxAnswers = 128

// maxTokenCount saturates a max_tokens value: far above any model's
// output (a reservation uses the model's maximum when max_tokens is
// larger), small enough that no product of counts can overflow.
const maxTokenCount = 1 << 40

// errNotAnObject is a metered body that is not one JSON object.
var errNotAnObject = errors.New("the request body must be one JSON object")

// invalidJSON is jsontext's error for an invalid body, worded for a user.
type invalidJSON struct{ err error }

func (e *invalidJSON) Error() string {
	return "the request body is not valid JSON: " + strings.TrimPrefix(e.err.Error(), "jsontext: ")
}

func (e *invalidJSON) Unwrap() error { return e.err }

// validObject reports why b is not exactly one valid JSON object, per RFC
// 7493 (I-JSON: UTF-8, no duplicate names at any depth, nothing after
// it), or nil. A provider parses the body whatever its Content-Type, and
// parsers disagree about duplicates and trailing data, so what metering
// reads must be the only thing a provider can read. The validation is
// go-json-experiment's jsontext, the encoding/json/v2 candidate, rather
// than a scanner of our own.
func validObject(b []byte) error {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return errNotAnObject
	}
	if jsontext.Value(b).IsValid() {
		return nil
	}
	// Invalid: decode it to say why (the slow path, for bad bodies only).
	dec := jsontext.NewDecoder(bytes.NewReader(b))
	if _, err := dec.ReadValue(); err != nil {
		return &invalidJSON{err}
	}
	return fmt.Errorf("the request body has data after its JSON object")
}

// parseMetered reads the fields metering needs from a metered request's
// body, which must be exactly one valid JSON object (validObject). The
// scan comes first: its errors name the key at fault.
func parseMetered(b []byte) (requestFields, error) {
	f, err := scanRequest(b)
	// The scan's errors name a metered key, better than the validation's
	// for a duplicate; for a body that is not valid JSON, the
	// validation's say where.
	if verr := validObject(b); verr != nil && (err == nil || !errors.Is(verr, jsontext.ErrDuplicateName)) {
		return requestFields{}, verr
	}
	return f, err
}

// scanRequest reads the fields of a JSON object body that metering needs,
// scanning as RequestModel does; see parseMetered.
//
// A body that names one of those keys twice, or in another case ("Model",
// or with a Unicode fold such as U+017F for "s"), is an error: providers
// parse JSON differently (Go's encoding/json, behind Ollama and others,
// matches keys case-insensitively), so the provider could read another
// model than the one the allowlist checked. So is a count that is not a
// whole number in range: a provider may read "1e3" or "-1" otherwise than
// the reservation did.
func scanRequest(b []byte) (requestFields, error) {
	var f requestFields
	var seen [len(meteredKeys)]bool
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return requestFields{}, errNotAnObject
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		f.end, f.empty = i, true
		return f, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return requestFields{}, errNotAnObject
		}
		keyStart := i
		if i = skipString(b, i); i < 0 {
			return requestFields{}, errNotAnObject
		}
		key := b[keyStart:i]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return requestFields{}, errNotAnObject
		}
		valStart := skipSpace(b, i+1)
		if i = skipValue(b, valStart); i < 0 {
			return requestFields{}, errNotAnObject
		}
		if k := meteredKey(key); k >= 0 {
			name := meteredKeys[k]
			if decoded := decodeString(key); decoded != name {
				return requestFields{}, fmt.Errorf("the body has the key %q: write it %q", truncate(decoded, 64), name)
			}
			if seen[k] {
				return requestFields{}, fmt.Errorf("the body has the key %q more than once", name)
			}
			seen[k] = true
			if err := f.read(name, b, valStart, i); err != nil {
				return requestFields{}, err
			}
		}

		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			f.end = i
			if skipSpace(b, i+1) != len(b) {
				return requestFields{}, errNotAnObject
			}
			return f, nil
		}
		if i >= len(b) || b[i] != ',' {
			return requestFields{}, errNotAnObject
		}
		i = skipSpace(b, i+1)
	}
}

// read takes the value of the metered member name, b[start:end] (the
// stream options' span is kept whole, so that the include_usage option
// can be added to them).
func (f *requestFields) read(name string, b []byte, start, end int) error {
	val := b[start:end]
	switch name {
	case "model":
		if len(val) > 0 && val[0] == '"' {
			f.model = decodeString(val)
		}
	case "stream":
		f.stream = string(val) == "true"
	case "stream_options":
		f.streamOptions = [2]int{start, end}
		f.usageOption, f.includeUsage = usageOption(b, start)
	case "n", "best_of":
		n, named, err := parseCount(val, maxAnswers, false)
		if err != nil {
			return fmt.Errorf("%s must be a whole number from 1 to %d, got %s", name, maxAnswers, truncate(string(val), 32))
		}
		if named {
			f.answers = max(f.answers, n)
		}
	default:
		n, named, err := parseCount(val, maxTokenCount, true)
		if err != nil {
			return fmt.Errorf("%s must be a whole number of tokens, at least 1, got %s", name, truncate(string(val), 32))
		}
		if named {
			f.maxOutput, f.hasMaxOutput = max(f.maxOutput, n), true
		}
	}
	return nil
}

// parseCount reads a count (max_tokens, n): null is no value (named
// false); otherwise a JSON number that is a whole number of at least 1,
// as an integer or in a float form that is exactly one ("100.0", "1e3"),
// at most ceiling, or saturated at ceiling when saturate (a max_tokens
// past any model's output only means "as long as the model allows").
// Anything else is an error: the caller refuses the request rather than
// guess what the provider will read.
func parseCount(val []byte, ceiling int64, saturate bool) (n int64, named bool, err error) {
	s := string(val)
	if s == "null" {
		return 0, false, nil
	}
	if len(s) == 0 || s[0] == '-' || !isJSONNumber(s) {
		return 0, false, errBadCount
	}
	x, err := strconv.ParseFloat(s, 64) // exact for every integer up to 2^53, past any ceiling
	if err != nil && !errors.Is(err, strconv.ErrRange) || x < 1 || x != math.Trunc(x) {
		return 0, false, errBadCount
	}
	if x > float64(ceiling) {
		if !saturate {
			return 0, false, errBadCount
		}
		return ceiling, true, nil
	}
	return int64(x), true, nil
}

var errBadCount = errors.New("not a whole number in range")

// isJSONNumber reports whether s is a JSON number: strconv.ParseFloat also
// takes "Inf", "0x10" and "1_000", which no JSON parser would.
func isJSONNumber(s string) bool {
	return jsontext.Value(s).Kind() == '0' && jsontext.Value(s).IsValid()
}

// meteredKey returns the index in meteredKeys of the quoted key, matched
// case-insensitively, or -1. Keys without a backslash, nearly all, are
// compared without decoding.
func meteredKey(quoted []byte) int {
	var key string
	if bytes.IndexByte(quoted, '\\') < 0 {
		inner := quoted[1 : len(quoted)-1]
		// The keys are 1 to 21 bytes long; a Unicode fold (U+212A for k)
		// can make a key 2 bytes longer per character, never longer than 3x.
		if len(inner) < 1 || len(inner) > 3*21 {
			return -1
		}
		for k, name := range meteredKeys {
			if string(inner) == name {
				return k
			}
		}
		key = string(inner)
	} else {
		key = decodeString(quoted)
	}
	for k, name := range meteredKeys {
		if strings.EqualFold(key, name) {
			return k
		}
	}
	return -1
}

// usageOption finds include_usage in the stream_options object at b[i]: the
// span of its value and whether that is true.
func usageOption(b []byte, i int) (span [2]int, isTrue bool) {
	if i >= len(b) || b[i] != '{' {
		return span, false
	}
	i = skipSpace(b, i+1)
	for i < len(b) && b[i] == '"' {
		keyStart := i
		if i = skipString(b, i); i < 0 {
			return [2]int{}, false
		}
		key := b[keyStart:i]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return [2]int{}, false
		}
		valStart := skipSpace(b, i+1)
		if i = skipValue(b, valStart); i < 0 {
			return [2]int{}, false
		}
		if string(key) == `"include_usage"` {
			return [2]int{valStart, i}, string(b[valStart:i]) == "true"
		}
		if i = skipSpace(b, i); i >= len(b) || b[i] != ',' {
			break
		}
		i = skipSpace(b, i+1)
	}
	return [2]int{}, false
}

// injectIncludeUsage returns body with stream_options.include_usage set to
// true: added to the object (or the object added) when absent, its value
// replaced when it is false or null. The rest of the body is unchanged,
// byte for byte. It reports false, and changes nothing, when
// stream_options is neither an object nor null (the provider rejects it).
func injectIncludeUsage(body []byte, f *requestFields) ([]byte, bool) {
	const field = `"include_usage":true`
	so := f.streamOptions
	switch {
	case so[1] == 0: // absent: add it as the last member
		return splice(body, f.end, f.end, `,"stream_options":{`+field+`}`), true
	case string(body[so[0]:so[1]]) == "null":
		return splice(body, so[0], so[1], `{`+field+`}`), true
	case body[so[0]] != '{':
		return body, false
	case f.usageOption[1] != 0: // present, not true
		return splice(body, f.usageOption[0], f.usageOption[1], "true"), true
	default:
		at := so[0] + 1
		if body[skipSpace(body, at)] == '}' {
			return splice(body, at, at, field), true
		}
		return splice(body, at, at, field+","), true
	}
}

// splice returns a new slice: b with b[from:to] replaced by s.
func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)-(to-from)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}

// Token estimates; see Request.EstimatedInputTokens.
const (
	bytesPerToken      = 4
	mediaBytesPerToken = 32
	// minMediaString is the shortest string counted as base64 media.
	minMediaString = 1 << 10
)

// estimateInputTokens is Request.EstimatedInputTokens for a JSON body.
func estimateInputTokens(b []byte) int64 {
	text, media := int64(len(b)), int64(0)
	if len(b) > 4*minMediaString {
		// Only a body this large can hold media worth telling apart.
		for i := 0; ; {
			k := bytes.IndexByte(b[i:], '"')
			if k < 0 {
				break
			}
			start := i + k
			end := skipString(b, start)
			if end < 0 {
				break
			}
			if s := b[start+1 : end-1]; len(s) >= minMediaString && isBase64Media(s) {
				text -= int64(len(s))
				media += int64(len(s))
			}
			i = end
		}
	}
	return ceilDiv(text, bytesPerToken) + ceilDiv(media, mediaBytesPerToken)
}

// isBase64Media reports a data: URL or a string whose first 256 bytes are
// in the base64 alphabets ("\/" is JSON's escaped "/"): images, audio and
// documents sent inline. Text, CJK included, has other bytes.
func isBase64Media(s []byte) bool {
	if bytes.HasPrefix(s, []byte("data:")) {
		comma := bytes.IndexByte(s[:min(len(s), 256)], ',')
		if comma < 0 {
			return false
		}
		s = s[comma+1:]
	}
	for _, c := range s[:min(len(s), 256)] {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9',
			c == '+', c == '/', c == '=', c == '-', c == '_', c == '\\':
		default:
			return false
		}
	}
	return true
}

func ceilDiv(a, b int64) int64 {
	return (a + b - 1) / b
}
