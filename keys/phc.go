package keys

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are argon2id cost parameters.
type Params struct {
	// Memory is the memory cost in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism (argon2's lanes, "p").
	Threads uint8
}

// DefaultParams are OWASP's minimum recommendation for argon2id
// (19 MiB, 2 passes, 1 lane). Hashes record their own parameters, so
// changing the defaults never breaks keys hashed earlier.
var DefaultParams = Params{Memory: 19456, Time: 2, Threads: 1}

// Limits on argon2 parameters, enforced when hashing and, more importantly,
// when verifying. Verification reads its parameters from the stored hash, so
// without limits a tampered or absurd hash Secret (m=4194304, t=4294967295)
// would make a gateway replica allocate gigabytes or spin for minutes on
// every request for that key: a denial of service through a single object.
// Out-of-limit hashes are rejected before any argon2 work.
//
// The limits can be tight because API keys are not passwords: a 190-bit
// random secret cannot be brute-forced whatever the KDF costs, so argon2 is
// here for defence in depth (docs/design.md, section 4), not to slow down
// guessing of a low-entropy secret. Every gateway cache miss pays the
// cost, so extra cost buys nothing but latency.
const (
	// MaxMemoryKiB (256 MiB) bounds one verification's allocation. The
	// gateway runs verifications under a semaphore, so this times the
	// semaphore width bounds argon2 memory per replica.
	MaxMemoryKiB = 262144
	// MinMemoryKiB (7 MiB) is the smallest memory of any configuration in
	// OWASP's argon2id list (m=7168, t=5), so every OWASP configuration is
	// accepted. Its main job is catching a unit mistake (a flag set to 19
	// meaning MiB would be 19 KiB, which is not memory-hard at all).
	MinMemoryKiB = 7168
	// MaxTime bounds the number of passes.
	MaxTime = 10
	// MaxThreads bounds argon2's lanes. Go's argon2 runs one goroutine per
	// lane, so this also bounds how many cores one verification can occupy.
	MaxThreads = 16
	// MaxWorkKiB bounds Memory*Time (KiB-passes). MaxMemoryKiB and MaxTime
	// alone would still allow m=256 MiB with t=10, several seconds of CPU
	// per verification. Capping the product at 512 MiB-passes (256 MiB
	// with t=2, or 64 MiB with t=8) keeps the worst case under a second:
	// 256 MiB with t=1 took 0.34s on a loaded 2-core machine. DefaultParams
	// use 38 MiB-passes; RFC 9106's second recommended option (64 MiB, t=3)
	// uses 192.
	MaxWorkKiB = 524288
)

// Sizes of the salt and tag. Hash always writes saltLength and tagLength;
// ParsePHC accepts a range so hashes written with other sizes still verify,
// with bounds so the parser never decodes unbounded input.
const (
	saltLength    = 16
	tagLength     = 32
	minSaltLength = 8
	maxSaltLength = 64
	minTagLength  = 16
	maxTagLength  = 64
	// maxPHCLength is longer than any string ParsePHC accepts (about 210
	// characters at the maximum of every field); longer input is rejected
	// before it is split or decoded.
	maxPHCLength = 256
)

var (
	// ErrInvalidParams is wrapped by Params.Validate errors.
	ErrInvalidParams = errors.New("keys: invalid argon2 parameters")
	// ErrInvalidPHC is wrapped by ParsePHC errors, and so by Verify errors.
	ErrInvalidPHC = errors.New("keys: invalid argon2id PHC string")
)

// Validate reports whether p is within the limits above. Errors wrap
// ErrInvalidParams and name the parameter that is out of range.
func (p Params) Validate() error {
	if reason := p.outOfLimits(); reason != "" {
		return fmt.Errorf("%w: %s", ErrInvalidParams, reason)
	}
	return nil
}

// outOfLimits returns why p is out of limits, or "" if it is not.
func (p Params) outOfLimits() string {
	switch {
	case p.Memory < MinMemoryKiB:
		return fmt.Sprintf("memory %d KiB is below the minimum of %d KiB", p.Memory, MinMemoryKiB)
	case p.Memory > MaxMemoryKiB:
		return fmt.Sprintf("memory %d KiB is above the limit of %d KiB", p.Memory, MaxMemoryKiB)
	case p.Time < 1:
		return "time must be at least 1"
	case p.Time > MaxTime:
		return fmt.Sprintf("time %d is above the limit of %d", p.Time, MaxTime)
	case p.Threads < 1:
		return "threads must be at least 1"
	case p.Threads > MaxThreads:
		return fmt.Sprintf("threads %d is above the limit of %d", p.Threads, MaxThreads)
	case uint64(p.Memory)*uint64(p.Time) > MaxWorkKiB:
		return fmt.Sprintf("memory*time %d KiB is above the limit of %d KiB",
			uint64(p.Memory)*uint64(p.Time), MaxWorkKiB)
	}
	return ""
}

// PHC is a decoded argon2id hash in PHC string format:
//
//	$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>
//
// with salt and hash in unpadded standard base64.
type PHC struct {
	Params Params
	Salt   []byte
	Hash   []byte
}

// String encodes h in PHC string format. For any string ParsePHC accepts,
// ParsePHC(s).String() == s.
func (h PHC) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, h.Params.Memory, h.Params.Time, h.Params.Threads,
		base64.RawStdEncoding.EncodeToString(h.Salt),
		base64.RawStdEncoding.EncodeToString(h.Hash))
}

// Hash hashes k with argon2id under p and a fresh random salt, and returns
// the PHC string to store.
func Hash(k Key, p Params) (string, error) {
	if k.full == nil {
		return "", errors.New("keys: cannot hash the zero Key")
	}
	if err := p.Validate(); err != nil {
		return "", err
	}
	salt := make([]byte, saltLength)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("keys: generating salt: %w", err)
	}
	return PHC{Params: p, Salt: salt, Hash: hashKey(k, p, salt, tagLength)}.String(), nil
}

// hashKey is the one place argon2 runs. It hashes the full key, not just the
// secret, so a hash is bound to its key ID: a hash Secret copied onto
// another key ID's entry cannot verify that ID's keys.
func hashKey(k Key, p Params, salt []byte, size uint32) []byte {
	return argon2.IDKey([]byte(k.Reveal()), salt, p.Time, p.Memory, p.Threads, size)
}

// Verify reports whether k matches the PHC string phc. The parameters, salt
// and tag length come from the string, so hashes written under older
// defaults keep verifying. A mismatch is (false, nil); an error means phc is
// unparsable or out of limits, and is returned before any argon2 work.
func Verify(k Key, phc string) (bool, error) {
	h, err := ParsePHC(phc)
	if err != nil {
		return false, err
	}
	return h.Verify(k), nil
}

// Verify reports whether k matches the parsed hash h. The gateway parses
// each hash once, when its Secret arrives, and verifies with this. h must
// come from ParsePHC (so its parameters are within limits).
func (h PHC) Verify(k Key) bool {
	if k.full == nil {
		return false
	}
	got := hashKey(k, h.Params, h.Salt, uint32(len(h.Hash)))
	// Constant time, so response timing says nothing about how many bytes
	// of a guess's tag matched.
	return subtle.ConstantTimeCompare(got, h.Hash) == 1
}

// ParsePHC decodes an argon2id PHC string strictly: exactly the fields
// $argon2id$v=19$m=<m>,t=<t>,p=<p>$<salt>$<hash> in that order, canonical
// decimal numbers (no leading zeros or signs) and canonical unpadded
// base64, so the accepted form is unique and PHC.String reproduces it.
// Parameters must be within the limits (see Params.Validate), the salt
// 8..64 bytes and the hash 16..64 bytes. Errors wrap ErrInvalidPHC and say
// which part is wrong.
func ParsePHC(s string) (PHC, error) {
	fail := func(format string, args ...any) (PHC, error) {
		return PHC{}, fmt.Errorf("%w: "+format, append([]any{ErrInvalidPHC}, args...)...)
	}
	if len(s) > maxPHCLength {
		return fail("%d characters, longer than any valid hash", len(s))
	}
	if !strings.HasPrefix(s, "$") {
		return fail("does not start with $")
	}
	// fields: "", algorithm, version, parameters, salt, hash.
	fields := strings.Split(s, "$")
	if len(fields) > 1 && fields[1] != "argon2id" {
		return fail("algorithm %q, want argon2id", fields[1])
	}
	if len(fields) > 2 && fields[2] != "v=19" {
		if strings.HasPrefix(fields[2], "v=") {
			return fail("version %q, want v=19 (argon2 1.3)", fields[2])
		}
		return fail("second field %q, want version v=19", fields[2])
	}
	if len(fields) < 6 {
		return fail("%d $-separated fields, want 5: $argon2id$v=19$m=..,t=..,p=..$<salt>$<hash>", len(fields)-1)
	}
	if len(fields) > 6 {
		return fail("%d $-separated fields, want 5 (extra $ segments)", len(fields)-1)
	}

	params, err := parseParams(fields[3])
	if err != nil {
		return fail("%v", err)
	}
	if reason := params.outOfLimits(); reason != "" {
		return fail("%s", reason)
	}
	salt, err := decodeBase64("salt", fields[4], minSaltLength, maxSaltLength)
	if err != nil {
		return fail("%v", err)
	}
	hash, err := decodeBase64("hash", fields[5], minTagLength, maxTagLength)
	if err != nil {
		return fail("%v", err)
	}
	return PHC{Params: params, Salt: salt, Hash: hash}, nil
}

// parseParams parses "m=<m>,t=<t>,p=<p>", in that order and nothing else.
func parseParams(field string) (Params, error) {
	parts := strings.Split(field, ",")
	if len(parts) != 3 {
		return Params{}, fmt.Errorf("parameters %q, want m=<memory>,t=<time>,p=<threads>", field)
	}
	memory, err := parseParam(parts[0], "m", 32)
	if err != nil {
		return Params{}, err
	}
	time, err := parseParam(parts[1], "t", 32)
	if err != nil {
		return Params{}, err
	}
	threads, err := parseParam(parts[2], "p", 8)
	if err != nil {
		return Params{}, err
	}
	return Params{Memory: uint32(memory), Time: uint32(time), Threads: uint8(threads)}, nil
}

// parseParam parses "<name>=<canonical decimal>" that fits in bits bits.
func parseParam(part, name string, bits int) (uint64, error) {
	digits, ok := strings.CutPrefix(part, name+"=")
	if !ok {
		return 0, fmt.Errorf("parameter %q, want %s=<number>", part, name)
	}
	if digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, fmt.Errorf("parameter %s=%q is not a canonical decimal number", name, digits)
	}
	for i := range len(digits) {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, fmt.Errorf("parameter %s=%q is not a canonical decimal number", name, digits)
		}
	}
	n, err := strconv.ParseUint(digits, 10, bits)
	if err != nil {
		return 0, fmt.Errorf("parameter %s=%s is out of range", name, digits)
	}
	return n, nil
}

// decodeBase64 decodes canonical unpadded standard base64 of min..max bytes.
// Re-encoding and comparing rejects what the decoder would let through but
// String would not reproduce: non-zero trailing bits and embedded CR/LF,
// which encoding/base64 silently skips.
func decodeBase64(name, field string, minLen, maxLen int) ([]byte, error) {
	b, err := base64.RawStdEncoding.DecodeString(field)
	if err != nil || base64.RawStdEncoding.EncodeToString(b) != field {
		return nil, fmt.Errorf("%s is not canonical unpadded base64", name)
	}
	if len(b) < minLen || len(b) > maxLen {
		return nil, fmt.Errorf("%s is %d bytes, want %d..%d", name, len(b), minLen, maxLen)
	}
	return b, nil
}
