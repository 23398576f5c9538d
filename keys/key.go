// Package keys owns the CodeVector API key format (docs/design.md, section
// 3) and the argon2id PHC codec used to store keys at rest (docs/design.md,
// section 4). It is shared by the controller, which generates and hashes
// keys, and the gateway, which parses and verifies them, so both sides
// agree on every byte.
//
// A key looks like
//
//	cvk_ Ab3De6Gh 0123456789ABCDEFGHIJKLMNOPQRSTUV 0VGEUy
//	^    ^        ^                                ^
//	|    key ID   secret                           CRC32 of everything before it
//	prefix
//
// (without the spaces). The layout follows GitHub's token format: a fixed
// prefix lets secret scanners recognise a leaked key, and the checksum lets
// the gateway reject typos and random garbage without any lookup or argon2
// work.
package keys

import (
	"crypto/rand"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"strings"
)

const (
	// Prefix starts every key, so secret scanners can match it.
	Prefix = "cvk_"
	// IDLength is the number of base62 characters of the key ID. The ID is
	// public (it is part of the display prefix) and is what the gateway
	// looks a key up by.
	IDLength = 8
	// SecretLength is the number of base62 characters of the secret:
	// 32*log2(62) ≈ 190 bits from crypto/rand.
	SecretLength = 32
	// ChecksumLength is the number of base62 characters of the checksum:
	// the CRC32 (IEEE) of everything before it, zero-padded. 62^6 > 2^32,
	// so six characters hold any CRC32.
	ChecksumLength = 6
	// Length is the length of a full key.
	Length = len(Prefix) + IDLength + SecretLength + ChecksumLength
	// DisplayPrefixLength is the length of the part of a key shown
	// everywhere (console, kubectl, logs): Prefix followed by the key ID.
	DisplayPrefixLength = len(Prefix) + IDLength
)

// bodyLength is the part of a key the checksum covers.
const bodyLength = DisplayPrefixLength + SecretLength

var (
	// ErrMalformed means the input is not shaped like a key: wrong length,
	// wrong prefix, or a character outside [0-9A-Za-z].
	ErrMalformed = errors.New("keys: malformed API key")
	// ErrChecksum means the input is shaped like a key but its checksum does
	// not match, i.e. it was mistyped, truncated and padded, or made up.
	ErrChecksum = errors.New("keys: API key checksum mismatch")
)

// base62Alphabet is in ASCII order, so for fixed-width strings lexical order
// matches numeric order.
const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Key is a parsed, checksum-valid API key.
//
// A Key never prints its secret: String, Format (every fmt verb, including
// %v, %+v and %#v), GoString and LogValue all show the display prefix
// followed by "…". Reveal is the only way to get the full key, so every place
// that handles the plaintext is easy to find.
//
// The zero Key is not a valid key; its ID, DisplayPrefix, Reveal and String
// return "".
//
// Compare keys with their Reveal (or ID) values, not with ==: == compares
// identity (see the field comment).
type Key struct {
	// full is behind a pointer so that reflection-based printing cannot reach
	// the secret either: when a Key sits in an unexported struct field, fmt
	// cannot call its methods and walks the fields instead, but it prints a
	// nested pointer as an address rather than following it.
	full *string
}

// ID returns the key ID, the IDLength characters after Prefix.
func (k Key) ID() string {
	if k.full == nil {
		return ""
	}
	return (*k.full)[len(Prefix):DisplayPrefixLength]
}

// DisplayPrefix returns Prefix followed by the key ID: the part of a key that
// may be shown and stored in the clear.
func (k Key) DisplayPrefix() string {
	if k.full == nil {
		return ""
	}
	return (*k.full)[:DisplayPrefixLength]
}

// Reveal returns the full key, secret included. It is the only way to get
// it; call it only where the plaintext is really needed (the one-shot reveal
// Secret, hashing, an outgoing request).
func (k Key) Reveal() string {
	if k.full == nil {
		return ""
	}
	return *k.full
}

// String returns the display prefix followed by "…", never the secret.
func (k Key) String() string {
	if k.full == nil {
		return ""
	}
	return k.DisplayPrefix() + "…"
}

// GoString implements fmt.GoStringer with the redacted form.
func (k Key) GoString() string {
	return fmt.Sprintf("keys.Key(%q)", k.String())
}

// Format implements fmt.Formatter. Without it, %+v and %#v would print the
// struct's fields; with it, every verb, flag and width applies to the
// redacted String form (or GoString for %#v).
func (k Key) Format(f fmt.State, verb rune) {
	if verb == 'v' && f.Flag('#') {
		io.WriteString(f, k.GoString())
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), k.String())
}

// LogValue implements slog.LogValuer, so structured logs get the redacted
// form whatever the handler does with other values.
func (k Key) LogValue() slog.Value {
	return slog.StringValue(k.String())
}

// Generate returns a new random key. The key ID and the secret both come
// from crypto/rand; the ID is random rather than sequential so it reveals
// nothing about how many keys exist. IDs are not guaranteed unique (8 base62
// characters are about 47.6 bits): the controller checks and regenerates on
// collision.
func Generate() (Key, error) {
	return generate(rand.Reader)
}

// generate is Generate with the randomness source injected for tests.
func generate(random io.Reader) (Key, error) {
	chars, err := randomBase62(random, IDLength+SecretLength)
	if err != nil {
		return Key{}, fmt.Errorf("keys: generating key: %w", err)
	}
	full := assemble(chars[:IDLength], chars[IDLength:])
	return Key{full: &full}, nil
}

// randomBase62 returns n characters drawn uniformly from base62Alphabet.
//
// A random byte modulo 62 would be biased: 256 is not a multiple of 62, so
// the first 256%62 = 8 characters would come up 5 times in 256 instead of 4,
// shaving entropy off every secret. Rejection sampling removes the bias:
// bytes at or above 248 (the largest multiple of 62 that fits in a byte) are
// thrown away and the rest are uniform over 62 values. About 3% of bytes are
// rejected, so a refill is rarely needed.
func randomBase62(random io.Reader, n int) (string, error) {
	const limit = 256 - 256%len(base62Alphabet) // 248
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/8+8) // enough for one pass almost always
	for len(out) < n {
		if _, err := io.ReadFull(random, buf); err != nil {
			return "", err
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, base62Alphabet[int(b)%len(base62Alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}

// assemble builds a full key from a key ID and a secret, appending the
// checksum. It does not validate its arguments.
func assemble(id, secret string) string {
	body := Prefix + id + secret
	return body + checksum(body)
}

// checksum returns the CRC32 (IEEE) of body in base62, most significant
// digit first, zero-padded to ChecksumLength characters.
func checksum(body string) string {
	sum := checksumOf(body)
	return string(sum[:])
}

// checksumOf is checksum without allocating, for Parse, which runs on
// every request: crc32's own functions take a []byte, and converting a
// string of this length allocates. The loop is the table-driven CRC32
// over crc32's own IEEE table (key_test.go checks it against
// crc32.ChecksumIEEE).
func checksumOf(body string) (out [ChecksumLength]byte) {
	crc := ^uint32(0)
	for i := 0; i < len(body); i++ {
		crc = crc32.IEEETable[byte(crc)^body[i]] ^ crc>>8
	}
	sum := uint64(^crc)
	for i := ChecksumLength - 1; i >= 0; i-- {
		out[i] = base62Alphabet[sum%62]
		sum /= 62
	}
	return out
}

// Parse validates a key's format and checksum, with no lookup. Errors wrap
// ErrMalformed or ErrChecksum.
//
// Error messages never include the input: it may be a real key pasted in the
// wrong place, and errors end up in logs.
func Parse(s string) (Key, error) {
	if len(s) != Length {
		return Key{}, fmt.Errorf("%w: length %d, want %d", ErrMalformed, len(s), Length)
	}
	if s[:len(Prefix)] != Prefix {
		return Key{}, fmt.Errorf("%w: does not start with %q", ErrMalformed, Prefix)
	}
	for i := len(Prefix); i < len(s); i++ {
		if !isBase62(s[i]) {
			return Key{}, fmt.Errorf("%w: character %d is not in [0-9A-Za-z]", ErrMalformed, i+1)
		}
	}
	// The checksum is a public function of the key, so comparing it in
	// variable time tells an attacker nothing they could not compute.
	if sum := checksumOf(s[:bodyLength]); string(sum[:]) != s[bodyLength:] {
		return Key{}, ErrChecksum
	}
	// Copy so the Key does not pin a larger buffer s may be a slice of
	// (for example a whole request header block).
	full := strings.Clone(s)
	return Key{full: &full}, nil
}

// DisplayPrefixOf returns the display prefix of the key with the given ID.
// It does not validate id; see ValidID.
func DisplayPrefixOf(id string) string {
	return Prefix + id
}

// ValidID reports whether id is shaped like a key ID: IDLength base62
// characters.
func ValidID(id string) bool {
	if len(id) != IDLength {
		return false
	}
	for i := range len(id) {
		if !isBase62(id[i]) {
			return false
		}
	}
	return true
}

func isBase62(c byte) bool {
	return '0' <= c && c <= '9' || 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z'
}

// WithID returns a well-formed key (valid checksum) with key ID id and k's
// secret. Tests and load generators use it to make a wrong secret for a
// real key ID: a key that passes every check before argon2.
func WithID(k Key, id string) (Key, error) {
	if !ValidID(id) {
		return Key{}, fmt.Errorf("%w: key ID must be %d base62 characters", ErrMalformed, IDLength)
	}
	secret := k.Reveal()[DisplayPrefixLength : DisplayPrefixLength+SecretLength]
	return Parse(assemble(id, secret))
}
