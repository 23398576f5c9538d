package metering

// The usage scanner reads token counts out of provider responses as they
// pass, JSON bodies and server-sent events alike, in bounded memory: it is
// a byte-at-a-time JSON state machine that keeps the stack of open
// containers (at most maxScanDepth) and the key being read, never a value.
// So a Responses API stream whose response.completed event repeats the
// whole answer costs no more memory than a short one.
//
// It does not know the formats apart. Wherever the providers put usage, it
// looks, in every JSON document (a body, or one event's data):
//
//	usage.{prompt_tokens,completion_tokens}            OpenAI chat, completions, embeddings (JSON and the last chunk of a stream)
//	usage.{input_tokens,output_tokens}                 OpenAI Responses and images (JSON), Anthropic (JSON, message_delta)
//	usage.cache_{creation,read}_input_tokens           Anthropic, counted as input
//	message.usage.*                                    Anthropic message_start
//	response.usage.*                                   OpenAI Responses events (response.completed)
//
// A count seen again replaces the earlier one: Anthropic's message_delta
// counts are cumulative. Nested objects (prompt_tokens_details and the
// like) are not read: their counts are already in the totals.
//
// For streams that end without usage it also counts the bytes of text
// delivered: string values under a top-level "delta" (Anthropic, Responses
// events), "content" or "output" (JSON answers), and under
// choices[].delta or choices[].message (OpenAI chat).

// scanCtx is where a value sits, as far as the scanner cares.
type scanCtx uint8

const (
	ctxNone     scanCtx = iota
	ctxRoot             // the document's top-level object
	ctxEnvelope         // root.message, root.response
	ctxUsage            // root.usage, root.message.usage, root.response.usage
	ctxCount            // a number member of a usage object
	ctxChoices          // root.choices
	ctxChoice           // root.choices[i]
	ctxText             // root.delta, root.content, root.output, choices[i].delta, choices[i].message, and all under them
)

// usageKey names the keys the scanner acts on; keyOther is every other.
type usageKey uint8

const (
	keyOther usageKey = iota
	keyUsage
	keyMessage
	keyResponse
	keyChoices
	keyDelta
	keyContent
	keyOutput
	// Counts, in the order of usageCounts.v.
	keyPromptTokens
	keyCompletionTokens
	keyInputTokens
	keyOutputTokens
	keyCacheCreationInputTokens
	keyCacheReadInputTokens
)

func lookupKey(k []byte) usageKey {
	switch string(k) {
	case "usage":
		return keyUsage
	case "message":
		return keyMessage
	case "response":
		return keyResponse
	case "choices":
		return keyChoices
	case "delta":
		return keyDelta
	case "content":
		return keyContent
	case "output":
		return keyOutput
	case "prompt_tokens":
		return keyPromptTokens
	case "completion_tokens":
		return keyCompletionTokens
	case "input_tokens":
		return keyInputTokens
	case "output_tokens":
		return keyOutputTokens
	case "cache_creation_input_tokens":
		return keyCacheCreationInputTokens
	case "cache_read_input_tokens":
		return keyCacheReadInputTokens
	}
	return keyOther
}

// usageCounts are the counts seen, by key.
type usageCounts struct {
	set uint8 // bit i: v[i] was seen
	v   [6]int64
}

func (u *usageCounts) put(k usageKey, n int64) {
	i := k - keyPromptTokens
	u.v[i] = n
	u.set |= 1 << i
}

func (u *usageCounts) has(k usageKey) bool { return u.set&(1<<(k-keyPromptTokens)) != 0 }

func (u *usageCounts) get(k usageKey) int64 { return u.v[k-keyPromptTokens] }

// input returns the input tokens reported, and whether any were.
func (u *usageCounts) input() (int64, bool) {
	if u.has(keyPromptTokens) {
		return u.get(keyPromptTokens), true
	}
	n := u.get(keyInputTokens) + u.get(keyCacheCreationInputTokens) + u.get(keyCacheReadInputTokens)
	return n, u.has(keyInputTokens) || u.has(keyCacheCreationInputTokens) || u.has(keyCacheReadInputTokens)
}

// output returns the output tokens reported, and whether any were.
func (u *usageCounts) output() (int64, bool) {
	if u.has(keyCompletionTokens) {
		return u.get(keyCompletionTokens), true
	}
	return u.get(keyOutputTokens), u.has(keyOutputTokens)
}

type jsonState uint8

const (
	jsValue        jsonState = iota // a value may start
	jsValueOrClose                  // after '[': a value or ']'
	jsKeyOrClose                    // after '{': a key or '}'
	jsKey                           // after ',' in an object
	jsColon
	jsAfterValue
	jsString // in a key or a string value
	jsNumber
	jsLiteral // true, false, null
	jsDone    // the document is over; only space may follow
	jsError   // not JSON, or too deep: ignore the rest of the document
)

const maxScanDepth = 32

type scanFrame struct {
	ctx   scanCtx
	array bool
	// empty is true until the container has a member.
	empty bool
}

// jsonScanner reads one JSON document after another (reset between them).
// Offsets passed to feed locate the top-level "usage":null member that
// meterWriter removes from chunks whose client did not ask for usage.
type jsonScanner struct {
	st     jsonState
	depth  int
	frames [maxScanDepth]scanFrame

	inKey  bool
	esc    bool
	keyBuf [32]byte
	keyLen int // -1: too long or escaped, so keyOther
	key    usageKey

	valCtx usageKeyCtx
	num    int64
	numOK  bool

	// Top-level members, for doc.usageNull.
	memberStart int // offset of the ',' before the member being read, or of its key when first
	memberFirst bool
	nullPending bool
	wantComma   bool

	doc docInfo

	// Over all documents.
	usage usageCounts
	text  int64
}

// usageKeyCtx is the context of the scalar being read.
type usageKeyCtx struct {
	ctx scanCtx
	key usageKey
}

// docInfo is what the scanner learnt of one document.
type docInfo struct {
	// usageObject: the document has a top-level "usage" object.
	usageObject bool
	// choicesEmpty: the document has a top-level "choices": [].
	choicesEmpty bool
	// usageNull is the span of a top-level "usage":null member with its
	// separating comma, [0,0) if none.
	usageNull [2]int
}

// reset prepares for the next document; counts are kept.
func (s *jsonScanner) reset() {
	s.st, s.depth, s.esc, s.nullPending, s.wantComma = jsValue, 0, false, false, false
	s.doc = docInfo{}
}

func isJSONSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// feed scans b, the next bytes of the document; base is the offset of b[0]
// in it. It runs for every byte of every answer, so the states' work is in
// methods small enough to be inlined, bar the rare ones.
func (s *jsonScanner) feed(b []byte, base int) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.st {
		case jsError:
			return
		case jsString:
			j, esc, escaped := i, s.esc, false
			for ; j < len(b); j++ {
				if esc {
					esc = false
				} else if b[j] == '"' {
					break
				} else if b[j] == '\\' {
					esc, escaped = true, true
				}
			}
			s.esc = esc
			s.stringRead(b[i:j], escaped)
			if j == len(b) {
				return
			}
			i = j
			if s.inKey {
				s.key, s.st = s.readKey(), jsColon
			} else {
				s.afterValue()
			}
		case jsValue, jsValueOrClose:
			if c == ']' && s.st == jsValueOrClose {
				s.close(true)
			} else if !isJSONSpace(c) {
				s.beginValue(c)
			}
		case jsKeyOrClose, jsKey:
			if c == '"' {
				s.startKey(base + i)
			} else if c == '}' && s.st == jsKeyOrClose {
				s.close(false)
			} else if !isJSONSpace(c) {
				s.st = jsError
			}
		case jsColon:
			if c == ':' {
				s.st = jsValue
			} else if !isJSONSpace(c) {
				s.st = jsError
			}
		case jsAfterValue:
			if array := s.frames[s.depth-1].array; c == ',' {
				s.comma(array, base+i)
			} else if c == '}' && !array || c == ']' && array {
				s.close(array)
			} else if !isJSONSpace(c) {
				s.st = jsError
			}
		case jsNumber:
			if '0' <= c && c <= '9' {
				s.digit(c)
			} else if !s.numberNonDigit(c) {
				i-- // the delimiter is the next state's
			}
		case jsLiteral:
			if !s.literalByte(c, base+i) {
				i--
			}
		case jsDone:
			if !isJSONSpace(c) {
				s.st = jsError
			}
		}
	}
}

// stringRead takes read, the next bytes of the key or string value being
// read (escaped: with a backslash, which makes a key one the scanner does
// not look for).
func (s *jsonScanner) stringRead(read []byte, escaped bool) {
	if s.inKey {
		if escaped {
			s.keyLen = -1
		}
		s.appendKey(read)
	} else if s.valCtx.ctx == ctxText {
		s.text += int64(len(read))
	}
}

// readKey is the key just read, keyOther when it was too long or escaped.
func (s *jsonScanner) readKey() usageKey {
	if s.keyLen < 0 {
		return keyOther
	}
	return lookupKey(s.keyBuf[:s.keyLen])
}

// startKey starts reading a key at offset at, noting where a top-level
// member starts.
func (s *jsonScanner) startKey(at int) {
	if s.depth == 1 && s.st == jsKeyOrClose {
		s.memberStart, s.memberFirst = at, true
	}
	s.inKey, s.esc, s.keyLen, s.st = true, false, 0, jsString
}

// comma reads the comma, at offset at, after a value in an array or an
// object. A top-level one ends the span of a "usage":null member that was
// the object's first, and starts the next member's.
func (s *jsonScanner) comma(array bool, at int) {
	if array {
		s.st = jsValue
		return
	}
	s.st = jsKey
	if s.depth == 1 {
		if s.wantComma {
			s.doc.usageNull[1] = at + 1
			s.wantComma = false
		}
		s.memberStart, s.memberFirst = at, false
	}
}

// digit reads a digit of a number.
func (s *jsonScanner) digit(c byte) {
	if s.num > (1<<62)/10 {
		s.numOK = false
	}
	s.num = s.num*10 + int64(c-'0')
}

// numberNonDigit reads c, not a digit, in a number: a fraction or an
// exponent makes it no count (only a non-negative integer that fits is
// one); any other byte ends it, and is the next state's (false).
func (s *jsonScanner) numberNonDigit(c byte) bool {
	if c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
		s.numOK = false
		return true
	}
	if s.numOK && s.valCtx.ctx == ctxCount {
		s.usage.put(s.valCtx.key, s.num)
	}
	s.afterValue()
	return false
}

// literalByte reads c, at offset at, in true, false or null, reporting
// false when c ends it (and is the next state's). A top-level
// "usage":null ends here: its span runs from its member's start.
func (s *jsonScanner) literalByte(c byte, at int) bool {
	if 'a' <= c && c <= 'z' {
		return true
	}
	if s.nullPending {
		s.nullPending = false
		s.doc.usageNull = [2]int{s.memberStart, at}
		// The first member has no comma before it: take the one after.
		s.wantComma = s.memberFirst
	}
	s.afterValue()
	return false
}

// end finishes the document: a number or literal at the very end of the
// input has no delimiter after it.
func (s *jsonScanner) end(base int) {
	if s.st == jsNumber || s.st == jsLiteral {
		s.feed([]byte{' '}, base)
	}
}

func (s *jsonScanner) appendKey(seg []byte) {
	if s.keyLen < 0 {
		return
	}
	if s.keyLen+len(seg) > len(s.keyBuf) {
		s.keyLen = -1
		return
	}
	s.keyLen += copy(s.keyBuf[s.keyLen:], seg)
}

// childCtx is the context of a value starting now in the innermost
// container.
func (s *jsonScanner) childCtx() scanCtx {
	if s.depth == 0 {
		return ctxRoot
	}
	p := &s.frames[s.depth-1]
	switch p.ctx {
	case ctxRoot:
		if p.array {
			return ctxNone
		}
		switch s.key {
		case keyUsage:
			return ctxUsage
		case keyMessage, keyResponse:
			return ctxEnvelope
		case keyChoices:
			return ctxChoices
		case keyDelta, keyContent, keyOutput:
			return ctxText
		}
	case ctxEnvelope:
		if !p.array && s.key == keyUsage {
			return ctxUsage
		}
	case ctxUsage:
		if !p.array && s.key >= keyPromptTokens {
			return ctxCount
		}
	case ctxChoices:
		if p.array {
			return ctxChoice
		}
	case ctxChoice:
		if !p.array && (s.key == keyDelta || s.key == keyMessage) {
			return ctxText
		}
	case ctxText:
		return ctxText
	}
	return ctxNone
}

func (s *jsonScanner) beginValue(c byte) {
	ctx := s.childCtx()
	if s.depth > 0 {
		s.frames[s.depth-1].empty = false
	}
	switch {
	case c == '{' || c == '[':
		if s.depth == maxScanDepth {
			s.st = jsError
			return
		}
		if ctx == ctxRoot && c == '[' {
			ctx = ctxNone
		}
		if ctx == ctxUsage && c == '{' && s.depth == 1 {
			s.doc.usageObject = true
		}
		s.frames[s.depth] = scanFrame{ctx: ctx, array: c == '[', empty: true}
		s.depth++
		if c == '{' {
			s.st = jsKeyOrClose
		} else {
			s.st = jsValueOrClose
		}
	case c == '"':
		s.inKey, s.esc, s.st = false, false, jsString
		s.valCtx = usageKeyCtx{ctx: ctx}
	case c == '-' || '0' <= c && c <= '9':
		s.valCtx = usageKeyCtx{ctx: ctx, key: s.key}
		s.num, s.numOK, s.st = 0, c != '-', jsNumber
		if c != '-' {
			s.num = int64(c - '0')
		}
	case c == 't' || c == 'f' || c == 'n':
		s.st = jsLiteral
		s.nullPending = c == 'n' && s.depth == 1 && s.frames[0].ctx == ctxRoot && s.key == keyUsage
	default:
		s.st = jsError
	}
}

func (s *jsonScanner) close(array bool) {
	s.depth--
	f := s.frames[s.depth]
	if f.ctx == ctxChoices && array && f.empty && s.depth == 1 {
		s.doc.choicesEmpty = true
	}
	s.afterValue()
}

func (s *jsonScanner) afterValue() {
	if s.depth == 0 {
		s.st = jsDone
	} else {
		s.st = jsAfterValue
	}
}

// sseState is where the event-stream parser is in a line.
type sseState uint8

const (
	sseLineStart sseState = iota
	sseField              // reading a field name
	sseDataSpace          // after "data:": an optional space
	sseData               // in a data line's value
	sseIgnore             // in a line that is not data
)

// sseScanner parses a text/event-stream (the WHATWG EventSource format,
// lines ending in "\n" or "\r\n") and feeds each event's data to a
// jsonScanner, one document per event.
type sseScanner struct {
	json     jsonScanner
	st       sseState
	field    [5]byte
	fieldLen int
	// dataLines counts the event's data lines: the ones after the first
	// continue its document after a "\n".
	dataLines int
	// offset is the offset in the current event of the next byte.
	offset int
	// last is what the scanner learnt of the last event to end.
	last docInfo
}

var newline = []byte{'\n'}

// feed scans b up to the end of the next event, returning how many bytes
// it consumed and whether an event ended with the last of them.
func (s *sseScanner) feed(b []byte) (n int, ended bool) {
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch s.st {
		case sseLineStart:
			switch c {
			case '\n':
				s.endEvent()
				return i + 1, true
			case '\r':
				continue
			}
			s.fieldLen = 0
			s.st = sseField
			fallthrough
		case sseField:
			switch c {
			case ':':
				if s.fieldLen == 4 && string(s.field[:4]) == "data" {
					s.st = sseDataSpace
				} else {
					s.st = sseIgnore
				}
			case '\n':
				s.st = sseLineStart
			default:
				if s.fieldLen < len(s.field) {
					s.field[s.fieldLen] = c
				}
				s.fieldLen++
			}
		case sseDataSpace:
			s.st = sseData
			if s.dataLines > 0 {
				s.json.feed(newline, s.offset+i)
			}
			s.dataLines++
			if c == ' ' {
				continue
			}
			i--
		case sseData:
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			s.json.feed(b[i:j], s.offset+i)
			if j == len(b) {
				s.offset += len(b)
				return len(b), false
			}
			s.st = sseLineStart
			i = j
		case sseIgnore:
			j := i
			for j < len(b) && b[j] != '\n' {
				j++
			}
			if j == len(b) {
				s.offset += len(b)
				return len(b), false
			}
			s.st = sseLineStart
			i = j
		}
	}
	s.offset += len(b)
	return len(b), false
}

func (s *sseScanner) endEvent() {
	s.json.end(s.offset)
	s.last = s.json.doc
	s.json.reset()
	s.dataLines, s.offset = 0, 0
	s.st = sseLineStart
}
