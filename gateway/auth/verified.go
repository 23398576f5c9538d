package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"hash"
	"sync"

	"k8s.io/apimachinery/pkg/types"
)

// verifiedCache remembers keys whose secret passed argon2id, so each key
// costs one argon2 run per process while it is unchanged. It is keyed by
// HMAC-SHA256 of the full key under a random per-process secret: the cache
// holds nothing that would let a memory dump recover or even test a key
// offline.
type verifiedCache struct {
	macKey []byte
	macs   sync.Pool

	mu      sync.RWMutex
	entries map[[sha256.Size]byte]proof
	max     int
}

// proof records what a secret was verified against: the APIKey incarnation
// and the index entry version. A hit counts only while both still hold.
// sharedEpoch is the epoch of the key's proof in the PeerProofs table (0:
// none, sharing is off).
type proof struct {
	keyID       string
	uid         types.UID
	version     uint64
	sharedEpoch int64
}

func newVerifiedCache(max int) *verifiedCache {
	c := &verifiedCache{macKey: make([]byte, 32), entries: map[[sha256.Size]byte]proof{}, max: max}
	if _, err := rand.Read(c.macKey); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	c.macs.New = func() any { return &macState{h: hmac.New(sha256.New, c.macKey)} }
	return c
}

// macState is one HMAC with room for its input and output, pooled so
// that hashing a key on every request allocates nothing.
type macState struct {
	h   hash.Hash
	in  []byte
	sum [sha256.Size]byte
}

func (c *verifiedCache) mac(key string) [sha256.Size]byte {
	m := c.macs.Get().(*macState)
	m.h.Reset()
	m.in = append(m.in[:0], key...)
	m.h.Write(m.in)
	m.h.Sum(m.sum[:0])
	sum := m.sum
	clear(m.in) // no copy of a key outlives the request
	c.macs.Put(m)
	return sum
}

func (c *verifiedCache) get(mac [sha256.Size]byte) (proof, bool) {
	c.mu.RLock()
	p, ok := c.entries[mac]
	c.mu.RUnlock()
	return p, ok
}

func (c *verifiedCache) put(mac [sha256.Size]byte, p proof) {
	c.mu.Lock()
	if len(c.entries) >= c.max {
		// Evict an arbitrary entry (map order is randomised): a bound on
		// memory matters more here than which key pays one more argon2 run.
		for k := range c.entries {
			delete(c.entries, k)
			break
		}
	}
	c.entries[mac] = p
	c.mu.Unlock()
}

func (c *verifiedCache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
