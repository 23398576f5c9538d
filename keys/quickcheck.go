package keys

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"strconv"
)

// A quick check is a 16-bit tag of a key, stored next to its argon2id hash,
// that lets a gateway turn away almost every wrong secret for a real key
// ID without running argon2 and without spending that key's verification
// budget (docs/design.md, section 4, issue 11). Before it, a stranger who knew
// a key's prefix (prefixes are shown to every viewer) could send a handful
// of wrong secrets and use up the key's argon2 allowance on a fresh gateway
// replica, so its owner's correct key was refused with 429 until it
// refilled. Now a wrong secret reaches argon2 with probability 2^-16, and
// the owner's key, which always passes, finds the budget untouched.
//
// Why this does not weaken the hash at rest: the secret is 190 random
// bits; the tag reveals at most 16 of them, so someone holding the hash
// Secret still faces about 2^173 argon2 evaluations on average. The tag is
// SHA-256 over the hash's own random salt and the key, so it cannot be
// precomputed across keys, and it is compared in constant time.
//
// Hand-written rather than from a library: it is one SHA-256 call, and no
// library offers a pre-filter for a password hash.

// QuickCheck is the 16-bit tag of k under salt (the salt of k's argon2id
// hash).
func QuickCheck(k Key, salt []byte) uint16 {
	h := sha256.New()
	h.Write([]byte("codevector.io/quick-check/v1"))
	h.Write(salt)
	h.Write([]byte(k.Reveal()))
	var sum [sha256.Size]byte
	return binary.BigEndian.Uint16(h.Sum(sum[:0]))
}

// FormatQuickCheck is the stored form of a quick check: 4 hex digits.
func FormatQuickCheck(c uint16) string { return fmt.Sprintf("%04x", c) }

// ParseQuickCheck reads the stored form.
func ParseQuickCheck(s string) (uint16, error) {
	if len(s) != 4 {
		return 0, fmt.Errorf("quick check %q: want 4 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 16)
	if err != nil {
		return 0, fmt.Errorf("quick check %q: want 4 hex digits", s)
	}
	return uint16(v), nil
}
