package keys

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// testParams keep argon2 cheap in tests; only TestHashDefaultParams and
// BenchmarkHashDefault pay for DefaultParams.
var testParams = Params{Memory: 8192, Time: 1, Threads: 1}

// siblingKey has the same key ID as knownKey and a secret that differs in
// its last character, with a valid checksum (computed in Python).
const siblingKey = "cvk_Ab3De6Gh0123456789ABCDEFGHIJKLMNOPQRSTUW1zGD5a"

// Hashes of knownKey made by the argon2 reference implementation (the
// argon2 command-line tool), not by this package, with fixed salts:
//
//	printf %s "$key" | argon2 <salt> -id -t <t> -k <m> -p <p> -l <tag bytes>
//
// They pin what is hashed (the full key string) and the PHC encoding, so a
// change to either, which would lock every existing key out, fails here.
const goldenPHC = "$argon2id$v=19$m=8192,t=1,p=1$MDEyMzQ1Njc4OWFiY2RlZg$gzWpQwx+2HBlPbMoS0Gy3KPCEPYQ3QjWBiP8nUf/lDE"

var referenceHashes = []string{
	goldenPHC, // salt "0123456789abcdef"
	"$argon2id$v=19$m=8192,t=2,p=2$c2FsdHNhbHRzYWx0c2FsdA$/iVNBaMfPZLTPhPmgG8+etqK96+mY55vbHfgtpKYutQ", // salt "saltsaltsaltsalt"
	"$argon2id$v=19$m=7168,t=3,p=1$TmFDbC04Ynk$5U1z+ezxQe56IxfxWNU0hA",                                 // 8-byte salt, 16-byte tag
}

func b64(n int, c byte) string {
	return base64.RawStdEncoding.EncodeToString([]byte(strings.Repeat(string(c), n)))
}

// TestVerifyReferenceHashes also shows that Verify takes its parameters,
// salt and tag length from the string: none of these use DefaultParams.
func TestVerifyReferenceHashes(t *testing.T) {
	key := mustParse(t, knownKey)
	sibling := mustParse(t, siblingKey)
	for _, phc := range referenceHashes {
		t.Run(phc, func(t *testing.T) {
			if ok, err := Verify(key, phc); !ok || err != nil {
				t.Errorf("Verify(key) = %v, %v; want true, nil", ok, err)
			}
			if ok, err := Verify(sibling, phc); ok || err != nil {
				t.Errorf("Verify(sibling key) = %v, %v; want false, nil", ok, err)
			}
		})
	}
}

// TestVerifyUsesParamsFromString changes one parameter of a valid hash at a
// time: if Verify ignored the string's parameters, these would still verify.
func TestVerifyUsesParamsFromString(t *testing.T) {
	key := mustParse(t, knownKey)
	h, err := ParsePHC(goldenPHC)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Params{
		{Memory: 8200, Time: 1, Threads: 1},
		{Memory: 8192, Time: 2, Threads: 1},
		{Memory: 8192, Time: 1, Threads: 2},
	} {
		tampered := PHC{Params: p, Salt: h.Salt, Hash: h.Hash}.String()
		if ok, err := Verify(key, tampered); ok || err != nil {
			t.Errorf("Verify with %+v = %v, %v; want false, nil", p, ok, err)
		}
	}
}

func TestHashVerify(t *testing.T) {
	for _, p := range []Params{
		testParams,
		{Memory: MinMemoryKiB, Time: 2, Threads: 2},
	} {
		t.Run(fmt.Sprintf("%+v", p), func(t *testing.T) {
			key, err := Generate()
			if err != nil {
				t.Fatal(err)
			}
			phc, err := Hash(key, p)
			if err != nil {
				t.Fatalf("Hash: %v", err)
			}
			parsed, err := ParsePHC(phc)
			if err != nil {
				t.Fatalf("ParsePHC(Hash output): %v", err)
			}
			if parsed.Params != p || len(parsed.Salt) != saltLength || len(parsed.Hash) != tagLength {
				t.Fatalf("Hash wrote params %+v, %d-byte salt, %d-byte tag; want %+v, %d, %d",
					parsed.Params, len(parsed.Salt), len(parsed.Hash), p, saltLength, tagLength)
			}
			if strings.Contains(phc, secretOf(key.Reveal())) {
				t.Fatal("PHC string contains the secret")
			}

			if ok, err := Verify(key, phc); !ok || err != nil {
				t.Errorf("Verify(key) = %v, %v; want true, nil", ok, err)
			}
			// A different valid key with the same ID: one character of the
			// secret changed, checksum recomputed.
			secret := []byte(secretOf(key.Reveal()))
			secret[0] = base62Alphabet[(strings.IndexByte(base62Alphabet, secret[0])+1)%62]
			sibling := mustParse(t, assemble(key.ID(), string(secret)))
			if ok, err := Verify(sibling, phc); ok || err != nil {
				t.Errorf("Verify(sibling key) = %v, %v; want false, nil", ok, err)
			}

			again, err := Hash(key, p)
			if err != nil {
				t.Fatal(err)
			}
			if again == phc {
				t.Error("two hashes of one key are equal: salt is not fresh")
			}
		})
	}
}

func TestHashDefaultParams(t *testing.T) {
	key := mustParse(t, knownKey)
	phc, err := Hash(key, DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(phc, want) {
		t.Errorf("Hash = %q, want prefix %q", phc, want)
	}
	if ok, err := Verify(key, phc); !ok || err != nil {
		t.Errorf("Verify = %v, %v; want true, nil", ok, err)
	}
}

func TestParamsValidate(t *testing.T) {
	tests := []struct {
		name   string
		params Params
		wantIn string // "" means valid
	}{
		{"defaults", DefaultParams, ""},
		{"test params", testParams, ""},
		{"minimum memory", Params{Memory: MinMemoryKiB, Time: 1, Threads: 1}, ""},
		{"maximum memory", Params{Memory: MaxMemoryKiB, Time: 2, Threads: 1}, ""},
		{"maximum time", Params{Memory: MaxWorkKiB / MaxTime, Time: MaxTime, Threads: 1}, ""},
		{"maximum threads", Params{Memory: 8192, Time: 1, Threads: MaxThreads}, ""},
		{"zero", Params{}, "memory 0 KiB is below the minimum"},
		{"memory below minimum", Params{Memory: MinMemoryKiB - 1, Time: 1, Threads: 1}, "below the minimum"},
		{"memory above limit", Params{Memory: MaxMemoryKiB + 1, Time: 1, Threads: 1}, "memory 262145 KiB is above the limit"},
		{"time zero", Params{Memory: 8192, Time: 0, Threads: 1}, "time must be at least 1"},
		{"time above limit", Params{Memory: 8192, Time: MaxTime + 1, Threads: 1}, "time 11 is above the limit"},
		{"threads zero", Params{Memory: 8192, Time: 1, Threads: 0}, "threads must be at least 1"},
		{"threads above limit", Params{Memory: 8192, Time: 1, Threads: MaxThreads + 1}, "threads 17 is above the limit"},
		{"work above limit", Params{Memory: MaxMemoryKiB, Time: 3, Threads: 1}, "memory*time 786432 KiB is above the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.params.Validate()
			if tt.wantIn == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParams) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("Validate() = %v, want ErrInvalidParams mentioning %q", err, tt.wantIn)
			}
			if _, err := Hash(mustParse(t, knownKey), tt.params); !errors.Is(err, ErrInvalidParams) {
				t.Fatalf("Hash with invalid params: error %v, want ErrInvalidParams", err)
			}
		})
	}
}

func TestParsePHC(t *testing.T) {
	maxed := "$argon2id$v=19$m=262144,t=2,p=16$" + b64(maxSaltLength, 's') + "$" + b64(maxTagLength, 'h')
	minimal := "$argon2id$v=19$m=7168,t=1,p=1$" + b64(minSaltLength, 's') + "$" + b64(minTagLength, 'h')
	for _, s := range append([]string{maxed, minimal}, referenceHashes...) {
		h, err := ParsePHC(s)
		if err != nil {
			t.Errorf("ParsePHC(%q): %v", s, err)
			continue
		}
		if got := h.String(); got != s {
			t.Errorf("ParsePHC(%q).String() = %q", s, got)
		}
	}
	if len(maxed) > maxPHCLength {
		t.Errorf("the longest valid PHC string is %d characters, above maxPHCLength %d", len(maxed), maxPHCLength)
	}

	h, err := ParsePHC(goldenPHC)
	if err != nil {
		t.Fatal(err)
	}
	if h.Params != testParams || string(h.Salt) != "0123456789abcdef" || len(h.Hash) != 32 {
		t.Errorf("ParsePHC(goldenPHC) = %+v", h)
	}
}

func TestParsePHCRejects(t *testing.T) {
	salt, hash := b64(16, 's'), b64(32, 'h')
	build := func(params, salt, hash string) string {
		return "$argon2id$v=19$" + params + "$" + salt + "$" + hash
	}
	valid := build("m=8192,t=1,p=1", salt, hash)
	tests := []struct {
		name   string
		input  string
		wantIn string
	}{
		{"empty", "", "does not start with $"},
		{"no leading $", valid[1:], "does not start with $"},
		{"argon2i", strings.Replace(valid, "argon2id", "argon2i", 1), `algorithm "argon2i"`},
		{"argon2d", strings.Replace(valid, "argon2id", "argon2d", 1), `algorithm "argon2d"`},
		{"upper-case algorithm", strings.Replace(valid, "argon2id", "ARGON2ID", 1), "want argon2id"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy", `algorithm "2a"`},
		{"version 16", strings.Replace(valid, "v=19", "v=16", 1), `version "v=16", want v=19`},
		{"version with leading zero", strings.Replace(valid, "v=19", "v=019", 1), `version "v=019"`},
		{"version missing", "$argon2id$m=8192,t=1,p=1$" + salt + "$" + hash, "want version v=19"},
		{"algorithm only", "$argon2id", "1 $-separated fields, want 5"},
		{"salt and hash missing", "$argon2id$v=19$m=8192,t=1,p=1", "3 $-separated fields, want 5"},
		{"hash missing", "$argon2id$v=19$m=8192,t=1,p=1$" + salt, "4 $-separated fields, want 5"},
		{"hash empty", valid[:len(valid)-len(hash)], "hash is 0 bytes"},
		{"trailing $", valid + "$", "extra $ segments"},
		{"extra segment", valid + "$" + hash, "extra $ segments"},
		{"extra keyid parameter", build("m=8192,t=1,p=1,keyid=abc", salt, hash), "want m=<memory>,t=<time>,p=<threads>"},
		{"p missing", build("m=8192,t=1", salt, hash), "want m=<memory>,t=<time>,p=<threads>"},
		{"parameters out of order", build("t=1,m=8192,p=1", salt, hash), `parameter "t=1", want m=<number>`},
		{"space after comma", build("m=8192, t=1,p=1", salt, hash), `parameter " t=1", want t=<number>`},
		{"memory with leading zero", build("m=08192,t=1,p=1", salt, hash), "not a canonical decimal number"},
		{"memory with plus sign", build("m=+8192,t=1,p=1", salt, hash), "not a canonical decimal number"},
		{"memory in hex", build("m=0x2000,t=1,p=1", salt, hash), "not a canonical decimal number"},
		{"memory empty", build("m=,t=1,p=1", salt, hash), "not a canonical decimal number"},
		{"time negative", build("m=8192,t=-1,p=1", salt, hash), "not a canonical decimal number"},
		{"memory overflows uint32", build("m=4294967296,t=1,p=1", salt, hash), "m=4294967296 is out of range"},
		{"threads overflow uint8", build("m=8192,t=1,p=256", salt, hash), "p=256 is out of range"},
		{"memory above limit", build("m=262145,t=1,p=1", salt, hash), "memory 262145 KiB is above the limit"},
		{"memory 4 GiB", build("m=4194304,t=1,p=1", salt, hash), "memory 4194304 KiB is above the limit"},
		{"memory below minimum", build("m=1024,t=1,p=1", salt, hash), "memory 1024 KiB is below the minimum"},
		{"time 0", build("m=8192,t=0,p=1", salt, hash), "time must be at least 1"},
		{"time above limit", build("m=8192,t=11,p=1", salt, hash), "time 11 is above the limit"},
		{"threads 0", build("m=8192,t=1,p=0", salt, hash), "threads must be at least 1"},
		{"threads above limit", build("m=8192,t=1,p=17", salt, hash), "threads 17 is above the limit"},
		{"work above limit", build("m=262144,t=3,p=1", salt, hash), "memory*time"},
		{"salt not base64", build("m=8192,t=1,p=1", "!!!!!!!!!!!!", hash), "salt is not canonical unpadded base64"},
		{"salt padded", build("m=8192,t=1,p=1", base64.StdEncoding.EncodeToString([]byte("saltsaltsaltsalt")), hash), "salt is not canonical"},
		{"salt with non-zero trailing bits", build("m=8192,t=1,p=1", salt[:len(salt)-1]+"x", hash), "salt is not canonical"},
		{"salt with embedded newline", build("m=8192,t=1,p=1", salt[:10]+"\n"+salt[10:], hash), "salt is not canonical"},
		{"hash in URL-safe base64", strings.ReplaceAll(goldenPHC, "+", "-"), "hash is not canonical"},
		{"trailing newline", valid + "\n", "hash is not canonical"},
		{"salt too short", build("m=8192,t=1,p=1", b64(4, 's'), hash), "salt is 4 bytes, want 8..64"},
		{"salt too long", build("m=8192,t=1,p=1", b64(65, 's'), hash), "salt is 65 bytes, want 8..64"},
		{"hash too short", build("m=8192,t=1,p=1", salt, b64(15, 'h')), "hash is 15 bytes, want 16..64"},
		{"hash too long", build("m=8192,t=1,p=1", salt, b64(65, 'h')), "hash is 65 bytes, want 16..64"},
		{"far too long", valid + strings.Repeat("A", 300), "longer than any valid hash"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, err := ParsePHC(tt.input)
			if err == nil {
				t.Fatalf("ParsePHC accepted %q as %+v", tt.input, h)
			}
			if !errors.Is(err, ErrInvalidPHC) || !strings.Contains(err.Error(), tt.wantIn) {
				t.Fatalf("ParsePHC error = %q, want ErrInvalidPHC mentioning %q", err, tt.wantIn)
			}
		})
	}
}

// TestVerifyOutOfLimitsFailsFast: had Verify run argon2 with these
// parameters it would allocate up to 4 GiB or make billions of passes; the
// limits must reject them first. The deadline is generous for a loaded CI
// machine and still far below what any of them would take.
func TestVerifyOutOfLimitsFailsFast(t *testing.T) {
	key := mustParse(t, knownKey)
	h, err := ParsePHC(goldenPHC)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for _, p := range []Params{
		{Memory: 4194304, Time: 1, Threads: 1},
		{Memory: 4294967295, Time: 4294967295, Threads: 255},
		{Memory: 8192, Time: 4294967295, Threads: 1},
		{Memory: MaxMemoryKiB, Time: MaxTime, Threads: MaxThreads},
	} {
		phc := PHC{Params: p, Salt: h.Salt, Hash: h.Hash}.String()
		ok, err := Verify(key, phc)
		if ok || !errors.Is(err, ErrInvalidPHC) {
			t.Errorf("Verify with %+v = %v, %v; want false, ErrInvalidPHC", p, ok, err)
		}
	}
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Errorf("rejecting out-of-limit hashes took %v", elapsed)
	}
}

func TestVerifyRejectsGarbage(t *testing.T) {
	key := mustParse(t, knownKey)
	for _, phc := range []string{"", "not a hash", knownKey, "$argon2id$v=19$m=8192,t=1,p=1$$"} {
		if ok, err := Verify(key, phc); ok || !errors.Is(err, ErrInvalidPHC) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrInvalidPHC", phc, ok, err)
		}
	}
}

func BenchmarkHashDefault(b *testing.B) {
	key := mustParse(b, knownKey)
	for b.Loop() {
		if _, err := Hash(key, DefaultParams); err != nil {
			b.Fatal(err)
		}
	}
}
