package proxy

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// requestFields are the top-level fields of a metered request's JSON body.
type requestFields struct {
	model     string
	stream    bool
	maxOutput int64
	// includeUsage is stream_options.include_usage: true.
	includeUsage bool
	// streamOptions is the span of stream_options' value, [0,0) if absent.
	streamOptions [2]int
	// usageOption is the span of stream_options.include_usage's value,
	// [0,0) if absent.
	usageOption [2]int
	// end is the index of the body's closing '}'.
	end int
}

// meteredKeys are the top-level keys scanRequest reads.
var meteredKeys = [...]string{"model", "stream", "stream_options", "max_tokens", "max_completion_tokens", "max_output_tokens"}

// scanRequest reads the fields of a JSON object body that metering needs,
// scanning as requestModel does. A body that is not a JSON object yields
// no fields and no error: the provider rejects it.
//
// A body that names one of those keys twice, or in another case ("Model",
// or with a Unicode fold such as U+017F for "s"), is an error: providers
// parse JSON differently (the last duplicate wins in most parsers; Go's
// encoding/json, behind Ollama and others, matches keys case-insensitively),
// so the provider could read another model than the one the allowlist
// checked.
func scanRequest(b []byte) (requestFields, error) {
	var f requestFields
	var seen [len(meteredKeys)]bool
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return requestFields{}, nil
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		f.end = i
		return f, nil
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return requestFields{}, nil
		}
		keyStart := i
		if i = skipString(b, i); i < 0 {
			return requestFields{}, nil
		}
		key := b[keyStart:i]
		if i = skipSpace(b, i); i >= len(b) || b[i] != ':' {
			return requestFields{}, nil
		}
		valStart := skipSpace(b, i+1)
		if i = skipValue(b, valStart); i < 0 {
			return requestFields{}, nil
		}
		val := b[valStart:i]

		if k := meteredKey(key); k >= 0 {
			name := meteredKeys[k]
			if decoded := decodeString(key); decoded != name {
				return requestFields{}, fmt.Errorf("the body has the key %q: write it %q", truncate(decoded, 64), name)
			}
			if seen[k] {
				return requestFields{}, fmt.Errorf("the body has the key %q more than once", name)
			}
			seen[k] = true
			switch name {
			case "model":
				if len(val) > 0 && val[0] == '"' {
					f.model = decodeString(val)
				}
			case "stream":
				f.stream = string(val) == "true"
			case "stream_options":
				f.streamOptions = [2]int{valStart, i}
				f.usageOption, f.includeUsage = usageOption(b, valStart)
			default:
				f.maxOutput = max(f.maxOutput, parseTokenCount(val))
			}
		}

		i = skipSpace(b, i)
		if i < len(b) && b[i] == '}' {
			f.end = i
			if skipSpace(b, i+1) != len(b) {
				return requestFields{}, nil
			}
			return f, nil
		}
		if i >= len(b) || b[i] != ',' {
			return requestFields{}, nil
		}
		i = skipSpace(b, i+1)
	}
}

// meteredKey returns the index in meteredKeys of the quoted key, matched
// case-insensitively, or -1. Keys without a backslash, nearly all, are
// compared without decoding.
func meteredKey(quoted []byte) int {
	var key string
	if bytes.IndexByte(quoted, '\\') < 0 {
		inner := quoted[1 : len(quoted)-1]
		// The keys are 5 to 21 bytes long; a Unicode fold (U+212A for k)
		// can make a key 2 bytes longer per character, never longer than 3x.
		if len(inner) < 5 || len(inner) > 3*21 {
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

// parseTokenCount reads a max_tokens value: a non-negative number, rounded
// up; anything else is 0.
func parseTokenCount(val []byte) int64 {
	if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
		return max(n, 0)
	}
	if x, err := strconv.ParseFloat(string(val), 64); err == nil && x > 0 && x < math.MaxInt64/2 {
		return int64(math.Ceil(x))
	}
	return 0
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
