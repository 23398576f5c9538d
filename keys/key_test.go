package keys

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

// knownKey is a valid key whose checksum was computed outside Go (Python's
// zlib.crc32 and a hand-written base62 encoder), so the tests do not check
// the implementation against itself.
const knownKey = "cvk_Ab3De6Gh0123456789ABCDEFGHIJKLMNOPQRSTUV0VGEUy"

var keyPattern = regexp.MustCompile(`^cvk_[0-9A-Za-z]{46}$`)

// secretOf returns the secret part of a full key.
func secretOf(full string) string {
	return full[DisplayPrefixLength : DisplayPrefixLength+SecretLength]
}

// mustParse parses a key that the test knows is valid.
func mustParse(t testing.TB, s string) Key {
	t.Helper()
	k, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(test key): %v", err)
	}
	return k
}

// independentChecksum computes a key's checksum without the package's
// encoder: math/big's base 62 uses the digits 0-9a-zA-Z, so swapping the
// case of its output gives the 0-9A-Za-z alphabet keys use.
func independentChecksum(body string) string {
	text := new(big.Int).SetUint64(uint64(crc32.ChecksumIEEE([]byte(body)))).Text(62)
	swapped := strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, text)
	return strings.Repeat("0", ChecksumLength-len(swapped)) + swapped
}

func TestConstants(t *testing.T) {
	if Length != 50 || DisplayPrefixLength != 12 {
		t.Fatalf("Length = %d, DisplayPrefixLength = %d; want 50, 12", Length, DisplayPrefixLength)
	}
}

func TestGenerateParseRoundTrip(t *testing.T) {
	for range 200 {
		k, err := Generate()
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		full := k.Reveal()
		if len(full) != Length || !keyPattern.MatchString(full) {
			t.Fatalf("generated key of length %d does not match %s", len(full), keyPattern)
		}
		if !ValidID(k.ID()) {
			t.Fatalf("ValidID(%q) = false for a generated ID", k.ID())
		}
		if got, want := k.DisplayPrefix(), DisplayPrefixOf(k.ID()); got != want || got != full[:DisplayPrefixLength] {
			t.Fatalf("DisplayPrefix() = %q, want %q", got, want)
		}
		if got, want := full[bodyLength:], independentChecksum(full[:bodyLength]); got != want {
			t.Fatalf("checksum %q, independently computed %q", got, want)
		}

		parsed, err := Parse(full)
		if err != nil {
			t.Fatalf("Parse(generated key): %v", err)
		}
		if parsed.Reveal() != full || parsed.ID() != k.ID() || parsed.DisplayPrefix() != k.DisplayPrefix() {
			t.Fatalf("Parse(generated key) = %v, want %v", parsed, k)
		}
	}
}

func TestGenerateUniqueIDs(t *testing.T) {
	const n = 10000
	ids := make(map[string]bool, n)
	secrets := make(map[string]bool, n)
	for range n {
		k, err := Generate()
		if err != nil {
			t.Fatalf("Generate: %v", err)
		}
		// With 62^8 possible IDs, a collision among 10k has probability
		// about 2e-7; one here means the randomness is broken.
		if ids[k.ID()] {
			t.Fatalf("duplicate key ID %s after %d keys", k.ID(), len(ids))
		}
		ids[k.ID()] = true
		secret := secretOf(k.Reveal())
		if secrets[secret] {
			t.Fatalf("duplicate secret after %d keys", len(secrets))
		}
		secrets[secret] = true
	}
}

// cyclingReader returns the bytes 0, 1, ..., 255, 0, 1, ... forever.
type cyclingReader struct{ next byte }

func (r *cyclingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("entropy source failed") }

// TestRandomBase62Unbiased feeds every byte value equally often: rejection
// sampling must turn that into every character equally often (a plain
// modulo would give the first 8 characters 5 hits per cycle instead of 4).
func TestRandomBase62Unbiased(t *testing.T) {
	const cycles = 10
	out, err := randomBase62(&cyclingReader{}, 248*cycles)
	if err != nil {
		t.Fatal(err)
	}
	counts := make(map[rune]int)
	for _, c := range out {
		counts[c]++
	}
	if len(counts) != 62 {
		t.Fatalf("got %d distinct characters, want 62", len(counts))
	}
	for _, c := range base62Alphabet {
		if counts[c] != 4*cycles {
			t.Errorf("character %q appeared %d times, want %d", c, counts[c], 4*cycles)
		}
	}
}

func TestRandomBase62(t *testing.T) {
	tests := []struct {
		name    string
		random  io.Reader
		n       int
		want    string
		wantErr bool
	}{
		{name: "rejects bytes 248..255", random: bytes.NewReader(append(bytes.Repeat([]byte{248, 255}, 4), 1, 61, 62, 247)), n: 4, want: "1z0z"},
		{name: "maps by modulo below 248", random: bytes.NewReader([]byte{0, 10, 36, 61, 62, 123, 124, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}), n: 7, want: "0Aaz0z0"},
		{name: "refills when a read is all rejections", random: io.MultiReader(bytes.NewReader(bytes.Repeat([]byte{250}, 9)), bytes.NewReader(bytes.Repeat([]byte{5}, 9))), n: 1, want: "5"},
		{name: "entropy failure", random: failingReader{}, n: 8, wantErr: true},
		{name: "short read", random: bytes.NewReader([]byte{1, 2}), n: 8, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := randomBase62(tt.random, tt.n)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestGenerateFailsWithoutEntropy(t *testing.T) {
	k, err := generate(failingReader{})
	if err == nil {
		t.Fatal("generate with a failing reader succeeded")
	}
	if k.Reveal() != "" {
		t.Fatalf("generate returned a key with its error")
	}
}

func TestChecksumKnownAnswers(t *testing.T) {
	// Computed with Python: zlib.crc32(body), then base62 (0-9A-Za-z),
	// most significant digit first, zero-padded to 6.
	tests := []struct {
		body  string
		crc32 uint32
		want  string
	}{
		{"cvk_Ab3De6Gh0123456789ABCDEFGHIJKLMNOPQRSTUV", 0x1b889328, "0VGEUy"},
		{"cvk_Ab3De6Gh0123456789ABCDEFGHIJKLMNOPQRSTUW", 0x6c8fa3be, "1zGD5a"},
		{"cvk_" + strings.Repeat("0", 40), 0x8d16a166, "2aBzBW"},
		{"cvk_" + strings.Repeat("z", 40), 0xba631a8d, "3PcoNp"},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			if got := crc32.ChecksumIEEE([]byte(tt.body)); got != tt.crc32 {
				t.Fatalf("CRC32 = %#x, want %#x", got, tt.crc32)
			}
			if got := checksum(tt.body); got != tt.want {
				t.Errorf("checksum = %q, want %q", got, tt.want)
			}
			if got := independentChecksum(tt.body); got != tt.want {
				t.Errorf("independentChecksum = %q, want %q (test helper is wrong)", got, tt.want)
			}
			k, err := Parse(tt.body + tt.want)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if k.ID() != tt.body[4:12] {
				t.Errorf("ID() = %q, want %q", k.ID(), tt.body[4:12])
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	valid := knownKey
	replace := func(i int, with string) string { return valid[:i] + with + valid[i+len(with):] }
	tests := []struct {
		name  string
		input string
		want  error
	}{
		{"empty", "", ErrMalformed},
		{"prefix only", Prefix, ErrMalformed},
		{"display prefix only", valid[:DisplayPrefixLength], ErrMalformed},
		{"one short", valid[:Length-1], ErrMalformed},
		{"one long", valid + "0", ErrMalformed},
		{"trailing newline", valid + "\n", ErrMalformed},
		{"leading space", " " + valid[:Length-1], ErrMalformed},
		{"Bearer included", "Bearer " + valid, ErrMalformed},
		{"upper-case prefix", replace(0, "CVK_"), ErrMalformed},
		{"other prefix", replace(0, "ghp_"), ErrMalformed},
		{"dash instead of underscore", replace(3, "-"), ErrMalformed},
		{"dash in ID", replace(5, "-"), ErrMalformed},
		{"underscore in secret", replace(20, "_"), ErrMalformed},
		{"space in checksum", replace(47, " "), ErrMalformed},
		{"NUL byte", replace(30, "\x00"), ErrMalformed},
		{"multi-byte character, same byte length", replace(30, "é"), ErrMalformed},
		{"padding character", replace(49, "="), ErrMalformed},
		{"checksum zeroed", replace(bodyLength, "000000"), ErrChecksum},
		{"checksum of another key", replace(bodyLength, "1zGD5a"), ErrChecksum},
		{"secret changed, checksum kept", replace(43, "W"), ErrChecksum},
		{"two characters swapped", valid[:20] + valid[21:22] + valid[20:21] + valid[22:], ErrChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := Parse(tt.input)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse error = %v, want %v", err, tt.want)
			}
			if k.Reveal() != "" {
				t.Errorf("Parse returned a key with its error")
			}
			assertNoLeak(t, err.Error(), tt.input)
		})
	}
}

// assertNoLeak fails if msg contains input or a recognisable part of it.
func assertNoLeak(t *testing.T, msg, input string) {
	t.Helper()
	if len(input) >= 8 && strings.Contains(msg, input) {
		t.Errorf("error message %q contains the input", msg)
	}
	if len(input) >= Length && strings.Contains(msg, input[DisplayPrefixLength:DisplayPrefixLength+8]) {
		t.Errorf("error message %q contains part of the secret", msg)
	}
}

// TestEverySingleCharacterChangeIsRejected substitutes every position of a
// valid key with every base62 character and some others. Parse must reject
// each (CRC32 detects every error within 32 consecutive bits, so any single
// changed byte of the body changes the checksum); if it ever did not, the
// hash must still refuse it.
func TestEverySingleCharacterChangeIsRejected(t *testing.T) {
	original := mustParse(t, knownKey)
	var phc string // hashed only if some change gets past Parse
	candidates := base62Alphabet + "-_ .=+/\x00\x7f\xff"
	rejected := 0
	for i := range Length {
		for j := range len(candidates) {
			c := candidates[j]
			if c == knownKey[i] {
				continue
			}
			changed := knownKey[:i] + candidates[j:j+1] + knownKey[i+1:]
			k, err := Parse(changed)
			if err != nil {
				wantErr := ErrChecksum
				if i < len(Prefix) || !isBase62(c) {
					wantErr = ErrMalformed
				}
				if !errors.Is(err, wantErr) {
					t.Errorf("position %d, %q: error %v, want %v", i, c, err, wantErr)
				}
				rejected++
				continue
			}
			t.Logf("position %d, %q: accepted by Parse, checking Verify", i, c)
			if phc == "" {
				if phc, err = Hash(original, testParams); err != nil {
					t.Fatal(err)
				}
			}
			if ok, err := Verify(k, phc); ok || err != nil {
				t.Errorf("position %d, %q: Verify = %v, %v; want false, nil", i, c, ok, err)
			}
		}
	}
	if want := Length * (len(candidates) - 1); rejected != want {
		t.Errorf("Parse rejected %d of %d changes", rejected, want)
	}
}

// TestKeyNeverPrintsSecret prints a key every way a caller plausibly could:
// fmt verbs and flags, nested in containers (including an unexported field,
// where fmt cannot call Key's methods), slog handlers, JSON, errors.
func TestKeyNeverPrintsSecret(t *testing.T) {
	k := mustParse(t, knownKey)
	secret := secretOf(knownKey)
	redacted := k.DisplayPrefix() + "…"

	type exported struct{ Key Key }
	type unexported struct{ key Key }
	type pointer struct{ key *Key }
	printed := map[string]string{
		"String":            k.String(),
		"GoString":          k.GoString(),
		"Sprint":            fmt.Sprint(k),
		"Sprintln":          fmt.Sprintln(k),
		"%v":                fmt.Sprintf("%v", k),
		"%+v":               fmt.Sprintf("%+v", k),
		"%#v":               fmt.Sprintf("%#v", k),
		"%s":                fmt.Sprintf("%s", k),
		"%q":                fmt.Sprintf("%q", k),
		"%x":                fmt.Sprintf("%x", k),
		"%X":                fmt.Sprintf("%X", k),
		"%d":                fmt.Sprintf("%d", k),
		"%T":                fmt.Sprintf("%T", k),
		"%80v":              fmt.Sprintf("%80v", k),
		"%-80s":             fmt.Sprintf("%-80s", k),
		"%.50s":             fmt.Sprintf("%.50s", k),
		"pointer %v":        fmt.Sprintf("%v", &k),
		"pointer %+v":       fmt.Sprintf("%+v", &k),
		"slice %v":          fmt.Sprintf("%v", []Key{k}),
		"slice %#v":         fmt.Sprintf("%#v", []Key{k}),
		"map %v":            fmt.Sprintf("%v", map[string]Key{"k": k}),
		"exported %+v":      fmt.Sprintf("%+v", exported{k}),
		"exported %#v":      fmt.Sprintf("%#v", exported{k}),
		"unexported %v":     fmt.Sprintf("%v", unexported{k}),
		"unexported %+v":    fmt.Sprintf("%+v", unexported{k}),
		"unexported %#v":    fmt.Sprintf("%#v", unexported{k}),
		"unexported ptr %v": fmt.Sprintf("%+v", pointer{&k}),
		"error %v":          fmt.Errorf("authenticating %v", k).Error(),
	}

	var text, js bytes.Buffer
	slog.New(slog.NewTextHandler(&text, nil)).Info("Authenticated key", "key", k, slog.Any("any", k), slog.Group("g", "key", k), "ptr", &k)
	slog.New(slog.NewJSONHandler(&js, nil)).Info("Authenticated key", "key", k, slog.Any("any", k), slog.Group("g", "key", k), "ptr", &k)
	printed["slog text"] = text.String()
	printed["slog JSON"] = js.String()
	marshalled, err := json.Marshal(exported{k})
	if err != nil {
		t.Fatal(err)
	}
	printed["json"] = string(marshalled)

	for name, out := range printed {
		if strings.Contains(out, secret) || strings.Contains(out, knownKey) {
			t.Errorf("%s printed the secret: %q", name, out)
		}
		if strings.Contains(strings.ToLower(out), hex.EncodeToString([]byte(secret))) {
			t.Errorf("%s printed the secret in hex: %q", name, out)
		}
	}
	// The redacted form is still useful: it names the key.
	for _, name := range []string{"String", "Sprint", "%v", "%+v", "%s", "slice %v", "exported %+v", "slog text", "slog JSON"} {
		if !strings.Contains(printed[name], redacted) {
			t.Errorf("%s = %q, want it to contain %q", name, printed[name], redacted)
		}
	}
	if got := printed["%#v"]; got != `keys.Key("cvk_Ab3De6Gh…")` {
		t.Errorf("%%#v = %s", got)
	}
	if k.Reveal() != knownKey {
		t.Errorf("Reveal() = %q, want the full key", k.Reveal())
	}
}

func TestZeroKey(t *testing.T) {
	var k Key
	for name, got := range map[string]string{
		"ID": k.ID(), "DisplayPrefix": k.DisplayPrefix(), "Reveal": k.Reveal(), "String": k.String(), "%v": fmt.Sprintf("%v", k),
	} {
		if got != "" {
			t.Errorf("zero Key %s = %q, want \"\"", name, got)
		}
	}
	if _, err := Hash(k, testParams); err == nil {
		t.Error("Hash(zero Key) succeeded")
	}
	if ok, err := Verify(k, goldenPHC); ok || err != nil {
		t.Errorf("Verify(zero Key) = %v, %v; want false, nil", ok, err)
	}
}

func TestValidID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"Ab3De6Gh", true},
		{"00000000", true},
		{"zzzzzzzz", true},
		{"", false},
		{"Ab3De6G", false},
		{"Ab3De6Gh0", false},
		{"Ab3De6G-", false},
		{"Ab3De6G_", false},
		{"Ab3De6G ", false},
		{"cvk_Ab3D", false},
		{"Ab3De6Gé", false},
	}
	for _, tt := range tests {
		if got := ValidID(tt.id); got != tt.want {
			t.Errorf("ValidID(%q) = %v, want %v", tt.id, got, tt.want)
		}
	}
	if got := DisplayPrefixOf("Ab3De6Gh"); got != "cvk_Ab3De6Gh" {
		t.Errorf("DisplayPrefixOf = %q", got)
	}
}

func BenchmarkParse(b *testing.B) {
	for b.Loop() {
		if _, err := Parse(knownKey); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		if _, err := Generate(); err != nil {
			b.Fatal(err)
		}
	}
}
