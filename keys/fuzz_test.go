package keys

import (
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, accepts only strings of the key
// shape that re-assemble to themselves, and never echoes its input in an
// error. The seeds run as part of go test.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		knownKey,
		siblingKey,
		"cvk_" + strings.Repeat("0", 40) + "2aBzBW",
		// near-valid
		knownKey[:Length-1],
		knownKey + "0",
		knownKey[:bodyLength] + "000000",
		"CVK_" + knownKey[4:],
		knownKey[:30] + "-" + knownKey[31:],
		knownKey[:30] + "é" + knownKey[32:],
		" " + knownKey,
		"Bearer " + knownKey,
		// junk
		"",
		"cvk_",
		goldenPHC,
		strings.Repeat("\xff", Length),
		strings.Repeat("z", Length),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := Parse(s)
		if err != nil {
			if k.Reveal() != "" {
				t.Fatal("Parse returned a key with an error")
			}
			if len(s) >= 16 && strings.Contains(err.Error(), s) {
				t.Fatalf("error %q contains the input", err)
			}
			return
		}
		if len(s) != Length || !keyPattern.MatchString(s) {
			t.Fatalf("Parse accepted %q, which is not shaped like a key", s)
		}
		if k.Reveal() != s {
			t.Fatalf("Reveal() = %q, want %q", k.Reveal(), s)
		}
		if got := assemble(k.ID(), secretOf(s)); got != s {
			t.Fatalf("re-assembled key %q, want %q", got, s)
		}
		if !ValidID(k.ID()) || k.DisplayPrefix() != DisplayPrefixOf(k.ID()) {
			t.Fatalf("ID %q / display prefix %q inconsistent", k.ID(), k.DisplayPrefix())
		}
		if strings.Contains(k.String(), secretOf(s)) {
			t.Fatalf("String() %q contains the secret", k.String())
		}
	})
}

// FuzzParsePHC checks that ParsePHC never panics and that everything it
// accepts is within limits and re-encodes to the same string (one accepted
// spelling per hash). It never runs argon2, so it fuzzes fast.
func FuzzParsePHC(f *testing.F) {
	salt, hash := b64(16, 's'), b64(32, 'h')
	for _, seed := range append([]string{
		// valid: the reference hashes below plus extremes
		"$argon2id$v=19$m=262144,t=2,p=16$" + b64(maxSaltLength, 's') + "$" + b64(maxTagLength, 'h'),
		"$argon2id$v=19$m=7168,t=1,p=1$" + b64(minSaltLength, 's') + "$" + b64(minTagLength, 'h'),
		// near-valid
		"$argon2id$v=16$m=8192,t=1,p=1$" + salt + "$" + hash,
		"$argon2i$v=19$m=8192,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=08192,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=8192,t=0,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=262145,t=1,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=262144,t=10,p=16$" + salt + "$" + hash,
		"$argon2id$v=19$m=8192,t=1,p=1$" + salt + "$" + hash + "$",
		"$argon2id$v=19$m=8192,t=1,p=1$" + salt + "$" + hash + "\n",
		"$argon2id$v=19$m=8192,t=1,p=1$" + salt[:len(salt)-1] + "x$" + hash,
		"$argon2id$v=19$m=8192,t=1,p=1$" + salt + "==$" + hash,
		"$argon2id$v=19$m=8192,t=1,p=1$" + salt,
		"$argon2id$v=19$t=1,m=8192,p=1$" + salt + "$" + hash,
		"$argon2id$v=19$m=8192,t=1,p=1,keyid=x$" + salt + "$" + hash,
		// junk
		"",
		"$",
		"$$$$$",
		knownKey,
		"$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	}, referenceHashes...) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParsePHC(s)
		if err != nil {
			return
		}
		if got := h.String(); got != s {
			t.Fatalf("ParsePHC(%q).String() = %q", s, got)
		}
		if err := h.Params.Validate(); err != nil {
			t.Fatalf("ParsePHC accepted out-of-limit params: %v", err)
		}
		if len(h.Salt) < minSaltLength || len(h.Salt) > maxSaltLength || len(h.Hash) < minTagLength || len(h.Hash) > maxTagLength {
			t.Fatalf("ParsePHC accepted a %d-byte salt and %d-byte hash", len(h.Salt), len(h.Hash))
		}
	})
}
