// Package sealedcookie turns small values into cookie values that the
// browser can carry but neither read nor change: the console's session
// (who you are, until when) and its sign-in state (OAuth state, OIDC
// nonce, PKCE verifier).
//
// A cookie value is base64url(version || nonce || XChaCha20-Poly1305
// ciphertext) of a JSON envelope {"exp": unix seconds, "v": value}. The
// expiry is inside the sealed payload, so a client cannot extend a session
// by editing the cookie's Expires attribute or by replaying an old value
// after it lapsed. The key of each use (purpose) is derived with HKDF-SHA256
// from one shared secret, the console's key file, so every gateway replica
// that mounts the same file opens every other replica's cookies, and a
// sign-in cookie can never be opened as a session (different key).
//
// Why not a session library (gorilla/securecookie and the like): the whole
// job is one AEAD call with an expiry check, which the standard library and
// x/crypto (already a dependency) do; a library would add a second key
// format next to the key file, and their encrypt-then-MAC constructions
// with separate hash and block keys are what an AEAD does in one
// primitive. XChaCha20-Poly1305 rather than AES-GCM because its 192-bit
// nonce can be random for as many cookies as the key ever seals, where
// GCM's 96-bit random nonces are limited to about 2^32 per key, and the key
// file lives for years.
package sealedcookie

import (
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// MinSecret is the shortest secret New accepts, in bytes.
const MinSecret = 32

// MaxValue is the longest cookie value Open looks at. Browsers keep about
// 4 KiB per cookie, name and attributes included.
const MaxValue = 3800

// version prefixes every sealed value, so the format can change without
// mistaking old cookies for new ones.
const version byte = 1

var (
	// ErrInvalid is a value this codec did not seal: garbage, tampered with,
	// sealed with another secret or for another purpose.
	ErrInvalid = errors.New("sealedcookie: not a value sealed by this key")
	// ErrExpired is a value this codec sealed whose expiry has passed.
	ErrExpired = errors.New("sealedcookie: expired")
	// ErrTooLarge is a value whose sealed form would not fit in a cookie.
	ErrTooLarge = errors.New("sealedcookie: value too large for a cookie")
)

// encoding is strict: base64 with non-zero padding bits would give a
// second spelling of the same bytes. Strict still skips CR and LF, so Open
// also checks the length (see canonical).
var encoding = base64.RawURLEncoding.Strict()

// canonical reports whether s is the one spelling Seal gives of b: the
// decoder silently skips CR and LF anywhere in its input, and each one
// makes the input longer than the encoding of what it decoded to.
func canonical(s string, b []byte) bool { return encoding.EncodedLen(len(b)) == len(s) }

// Codec seals and opens values for one purpose.
type Codec struct {
	aead    cipher.AEAD
	purpose string
	now     func() time.Time
	random  io.Reader // nonces; crypto/rand but in the fuzz test
}

// New derives the purpose's key from secret (at least MinSecret bytes).
// now is the clock that judges expiry; nil means time.Now.
func New(secret []byte, purpose string, now func() time.Time) (*Codec, error) {
	if len(secret) < MinSecret {
		return nil, fmt.Errorf("sealedcookie: the secret must be at least %d bytes", MinSecret)
	}
	if purpose == "" {
		return nil, errors.New("sealedcookie: a purpose is required")
	}
	key, err := hkdf.Key(sha256.New, secret, nil, "codevector console cookie v1: "+purpose, chacha20poly1305.KeySize)
	if err != nil {
		return nil, err
	}
	aead, err := chacha20poly1305.NewX(key)
	if err != nil {
		return nil, err
	}
	if now == nil {
		now = time.Now
	}
	return &Codec{aead: aead, purpose: purpose, now: now, random: rand.Reader}, nil
}

type envelope struct {
	Expires int64           `json:"exp"`
	Value   json.RawMessage `json:"v"`
}

// additionalData binds the ciphertext to the format version and purpose,
// on top of the purpose's own key.
func (c *Codec) additionalData() []byte { return append([]byte{version}, c.purpose...) }

// Seal encodes v (as JSON) so that Open returns it until expires.
func (c *Codec) Seal(v any, expires time.Time) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("sealedcookie: %w", err)
	}
	plain, err := json.Marshal(envelope{Expires: expires.Unix(), Value: raw})
	if err != nil {
		return "", fmt.Errorf("sealedcookie: %w", err)
	}
	out := make([]byte, 1+c.aead.NonceSize(), 1+c.aead.NonceSize()+len(plain)+c.aead.Overhead())
	out[0] = version
	if _, err := io.ReadFull(c.random, out[1:]); err != nil {
		return "", err
	}
	out = c.aead.Seal(out, out[1:], plain, c.additionalData())
	s := encoding.EncodeToString(out)
	if len(s) > MaxValue {
		return "", ErrTooLarge
	}
	return s, nil
}

// Open decodes a value Seal made into v. It returns ErrInvalid for
// anything Seal did not make with this secret and purpose, and ErrExpired
// (v untouched) for a genuine value past its expiry.
func (c *Codec) Open(s string, v any) error {
	if len(s) > MaxValue {
		return ErrInvalid
	}
	b, err := encoding.DecodeString(s)
	if err != nil || !canonical(s, b) || len(b) < 1+c.aead.NonceSize()+c.aead.Overhead() || b[0] != version {
		return ErrInvalid
	}
	nonce, sealed := b[1:1+c.aead.NonceSize()], b[1+c.aead.NonceSize():]
	plain, err := c.aead.Open(nil, nonce, sealed, c.additionalData())
	if err != nil {
		return ErrInvalid
	}
	var env envelope
	if err := json.Unmarshal(plain, &env); err != nil {
		// Authentic but unreadable: sealed by a future format under the
		// same version byte, which must not happen. Treat as invalid.
		return ErrInvalid
	}
	if !c.now().Before(time.Unix(env.Expires, 0)) {
		return ErrExpired
	}
	if err := json.Unmarshal(env.Value, v); err != nil {
		return ErrInvalid
	}
	return nil
}
