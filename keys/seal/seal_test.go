package seal

import (
	"bytes"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/codevector/codevector/keys"
)

func TestSealOpen(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	alice, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := Seal(alice.PublicKey(), "uid-1", k)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(k.Reveal())) || bytes.Contains(sealed, []byte(k.DisplayPrefix())) {
		t.Fatal("sealed bytes contain the key")
	}
	got, err := alice.Open("uid-1", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if got.Reveal() != k.Reveal() {
		t.Fatal("opened a different key")
	}

	bob, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Clone(sealed)
	tampered[len(tampered)-1] ^= 1
	for name, open := range map[string]func() (keys.Key, error){
		"another private key": func() (keys.Key, error) { return bob.Open("uid-1", sealed) },
		"another APIKey UID":  func() (keys.Key, error) { return alice.Open("uid-2", sealed) },
		"altered ciphertext":  func() (keys.Key, error) { return alice.Open("uid-1", tampered) },
		"truncated":           func() (keys.Key, error) { return alice.Open("uid-1", sealed[:40]) },
	} {
		if _, err := open(); !errors.Is(err, ErrCannotOpen) {
			t.Errorf("%s: err = %v, want ErrCannotOpen", name, err)
		}
	}
}

func TestPublicKeyIsTheHybridKEM(t *testing.T) {
	p, err := NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(p.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	// ML-KEM-768 encapsulation key (1184 bytes) + X25519 public key (32).
	if len(raw) != 1184+32 {
		t.Fatalf("public key is %d bytes, want 1216", len(raw))
	}
	if err := ValidatePublicKey(p.PublicKey()); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "not base64!", base64.StdEncoding.EncodeToString(raw[:100])} {
		if err := ValidatePublicKey(bad); err == nil {
			t.Errorf("ValidatePublicKey(%.20q) accepted it", bad)
		}
	}
}

func FuzzOpen(f *testing.F) {
	p, err := NewPrivateKey()
	if err != nil {
		f.Fatal(err)
	}
	k, _ := keys.Generate()
	sealed, _ := Seal(p.PublicKey(), "u", k)
	f.Add(sealed)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 4096 {
			return // a sealed key is 1,158 bytes; longer inputs only slow the search
		}
		got, err := p.Open("u", b)
		if err == nil && !bytes.Equal(b, sealed) && got.Reveal() != k.Reveal() {
			t.Fatal("opened bytes nobody sealed")
		}
	})
}
