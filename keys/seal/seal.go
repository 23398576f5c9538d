// Package seal seals a new key to the one person who asked for it, so the
// plaintext never rests anywhere a second person can read (docs/design.md,
// section 11).
//
// The requester (kubectl apikey create|reveal, or the gateway for one
// console request) generates an HPKE key pair in memory and puts the public
// half in spec.revealPublicKey. The controller seals the key to it and
// writes only the sealed bytes to the reveal Secret, so reading that Secret
// (a teammate with Secret read, a cluster admin, a backup of etcd) yields
// nothing usable. The suite is RFC 9180 HPKE in base mode: KEM
// ML-KEM-768 + X25519 (post-quantum hybrid, so a recording made today
// cannot be opened by a quantum computer later), KDF HKDF-SHA256, AEAD
// ChaCha20-Poly1305. The info string binds the APIKey's UID: sealed bytes
// copied to another APIKey do not open.
package seal

import (
	"crypto/hpke"
	"encoding/base64"
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/types"

	"github.com/codevector/codevector/keys"
)

// infoPrefix versions the construction; the APIKey's UID follows it.
const infoPrefix = "codevector.io/apikey-reveal/v1 "

var (
	kem  = hpke.MLKEM768X25519()
	kdf  = hpke.HKDFSHA256()
	aead = hpke.ChaCha20Poly1305()
)

// ErrCannotOpen: the sealed bytes were not sealed to this private key for
// this APIKey, or were altered.
var ErrCannotOpen = errors.New("the sealed key cannot be opened with this reveal request's private key")

func info(apiKeyUID types.UID) []byte { return []byte(infoPrefix + string(apiKeyUID)) }

// PrivateKey is one reveal request's private key. It exists only in the
// memory of the process that made it and is never serialised: a lost
// PrivateKey means the key cannot be revealed, which is the point.
type PrivateKey struct {
	k hpke.PrivateKey
}

// NewPrivateKey generates a fresh key pair.
func NewPrivateKey() (*PrivateKey, error) {
	k, err := kem.GenerateKey()
	if err != nil {
		return nil, fmt.Errorf("generating reveal key pair: %w", err)
	}
	return &PrivateKey{k: k}, nil
}

// PublicKey is the value for spec.revealPublicKey: standard base64 of the
// serialised public key.
func (p *PrivateKey) PublicKey() string {
	return base64.StdEncoding.EncodeToString(p.k.PublicKey().Bytes())
}

// Open returns the key sealed for the APIKey with that UID.
func (p *PrivateKey) Open(apiKeyUID types.UID, sealed []byte) (keys.Key, error) {
	plain, err := hpke.Open(p.k, kdf, aead, info(apiKeyUID), sealed)
	if err != nil {
		return keys.Key{}, ErrCannotOpen
	}
	k, err := keys.Parse(string(plain))
	if err != nil {
		return keys.Key{}, fmt.Errorf("the sealed key is not a valid key: %w", err)
	}
	return k, nil
}

// ValidatePublicKey reports whether s is usable as spec.revealPublicKey.
func ValidatePublicKey(s string) error {
	_, err := parsePublicKey(s)
	return err
}

func parsePublicKey(s string) (hpke.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("revealPublicKey is not standard base64: %w", err)
	}
	pk, err := kem.NewPublicKey(b)
	if err != nil {
		return nil, fmt.Errorf("revealPublicKey is not an ML-KEM-768+X25519 public key: %w", err)
	}
	return pk, nil
}

// Seal seals k to publicKey (spec.revealPublicKey) for the APIKey with
// that UID. The result is hpke.Seal's output: the encapsulated key, then
// the ciphertext.
func Seal(publicKey string, apiKeyUID types.UID, k keys.Key) ([]byte, error) {
	pk, err := parsePublicKey(publicKey)
	if err != nil {
		return nil, err
	}
	sealed, err := hpke.Seal(pk, kdf, aead, info(apiKeyUID), []byte(k.Reveal()))
	if err != nil {
		return nil, fmt.Errorf("sealing key: %w", err)
	}
	return sealed, nil
}
