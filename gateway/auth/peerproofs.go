package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/codevector/codevector/gateway/keyindex"
)

// ProofEpoch is how long one proof key lasts. Proof keys are derived from
// the replicas' shared root per epoch, so they rotate on this schedule with
// nothing written anywhere. A proof is honoured in the epoch it was made in
// and the next (and the one before, for a peer whose clock runs ahead), so
// it lasts 6 to 12 hours unless the key is used again, which renews it.
const ProofEpoch = 6 * time.Hour

// PeerProof says that a replica verified a key's secret with argon2id
// against one APIKey incarnation, hash Secret, hash and rotation state
// (Binding). MAC is HMAC-SHA256, under the epoch's proof key, of the
// binding and of the full key itself: without the key's secret it proves
// nothing, so a replica that learns it still needs the key from the
// client, and a proof made for another key, APIKey, hash or rotation state
// never matches.
type PeerProof struct {
	KeyID   string
	Binding Binding
	Epoch   int64
	MAC     [sha256.Size]byte
}

// Binding identifies what a key was verified against: SHA-256, truncated,
// of its key ID, APIKey UID, hash Secret UID, rotation state and argon2id
// hash (parameters, salt and output). A fixed 16 bytes rather than the
// fields themselves keeps a proof at about 150 bytes of memory.
type Binding [16]byte

// BindingOf is e's Binding; e must have a hash.
func BindingOf(e *keyindex.Entry) (b Binding) {
	h := sha256.New()
	field := func(s string) {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field("codevector verified-key binding v1")
	field(e.KeyID)
	field(string(e.UID))
	field(string(e.HashUID))
	if e.Previous {
		field("previous")
	} else {
		field("current")
	}
	field(e.Hash.String())
	copy(b[:], h.Sum(nil))
	return b
}

// PeerProofs is the table of proofs a replica shares with its peers: those
// it made after an argon2id verification and those it learned. It lives in
// memory only; nothing in it is ever written to etcd, a Secret or disk. A
// key's proof is checked with one HMAC, so a replica that learned it skips
// argon2id for that key (docs/design.md, section 14.2, issue 15).
//
// It does nothing until Enable: a single replica has no one to share with.
type PeerProofs struct {
	sharing atomic.Pointer[sharing] // nil until Enable

	mu    sync.RWMutex
	byKey map[string]PeerProof
	max   int
}

func newPeerProofs(max int) *PeerProofs {
	return &PeerProofs{byKey: map[string]PeerProof{}, max: max}
}

// Enable starts sharing: root is the replicas' shared secret (the proof
// keys are derived from it per epoch), and publish, if not nil, is called
// with each proof this replica makes, to pass on to its peers; it must not
// block.
func (t *PeerProofs) Enable(root []byte, publish func(PeerProof)) {
	t.sharing.Store(&sharing{root: append([]byte(nil), root...), publish: publish})
}

// sharing is what Enable sets, swapped in at once: requests may already
// be served while a replica starts.
type sharing struct {
	root    []byte
	publish func(PeerProof)
}

func (t *PeerProofs) enabled() bool { return t.sharing.Load() != nil }

// epochOf is the proof epoch that now falls in.
func epochOf(now time.Time) int64 { return now.Unix() / int64(ProofEpoch/time.Second) }

// mac computes a proof's MAC for the full key raw.
func (t *PeerProofs) mac(p *PeerProof, raw string) (sum [sha256.Size]byte) {
	root := t.sharing.Load().root
	var epoch [8]byte
	binary.BigEndian.PutUint64(epoch[:], uint64(p.Epoch))
	kdf := hmac.New(sha256.New, root)
	kdf.Write([]byte("codevector verified-key proof key v1\x00"))
	kdf.Write(epoch[:])
	m := hmac.New(sha256.New, kdf.Sum(nil))
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(p.KeyID)))
	m.Write(n[:])
	m.Write([]byte(p.KeyID))
	m.Write(p.Binding[:])
	m.Write([]byte(raw))
	m.Sum(sum[:0])
	return sum
}

// record makes this replica's proof that raw is e's key, after argon2id
// said so, and publishes it. It returns the proof's epoch, 0 when sharing
// is off.
func (t *PeerProofs) record(e *keyindex.Entry, raw string, now time.Time) int64 {
	if !t.enabled() || e.Hash == nil {
		return 0
	}
	p := PeerProof{KeyID: e.KeyID, Binding: BindingOf(e), Epoch: epochOf(now)}
	p.MAC = t.mac(&p, raw)
	t.put(p)
	if publish := t.sharing.Load().publish; publish != nil {
		publish(p)
	}
	return p.Epoch
}

// check reports whether a peer (or this replica earlier) proved raw for e,
// with one HMAC and no argon2, and returns the proof's epoch (0: no).
func (t *PeerProofs) check(e *keyindex.Entry, raw string, now time.Time) int64 {
	if !t.enabled() || e.Hash == nil {
		return 0
	}
	t.mu.RLock()
	p, ok := t.byKey[e.KeyID]
	t.mu.RUnlock()
	if !ok || !bindsTo(p, e) || !currentEpoch(p.Epoch, now) {
		return 0
	}
	want := t.mac(&p, raw)
	if subtle.ConstantTimeCompare(want[:], p.MAC[:]) != 1 {
		return 0
	}
	return p.Epoch
}

// bindsTo reports whether p was made for e's APIKey incarnation, hash
// and rotation state; the MAC binds the same to the key's secret.
func bindsTo(p PeerProof, e *keyindex.Entry) bool {
	return e.Hash != nil && p.KeyID == e.KeyID && p.Binding == BindingOf(e)
}

func currentEpoch(epoch int64, now time.Time) bool {
	d := epochOf(now) - epoch
	return d >= -1 && d <= 1
}

func (t *PeerProofs) put(p PeerProof) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.byKey[p.KeyID]; ok && old.Epoch > p.Epoch && old.Binding == p.Binding {
		return // a newer proof of the same key stays
	}
	if _, ok := t.byKey[p.KeyID]; !ok && len(t.byKey) >= t.max {
		// Evict an arbitrary proof: a bound on memory matters more than
		// which key pays one more argon2 run.
		for k := range t.byKey {
			delete(t.byKey, k)
			break
		}
	}
	t.byKey[p.KeyID] = p
}

// Import adds proofs learned from a peer and returns how many it kept.
// Nothing is checked here but the epoch: a proof is checked against the
// key index and the client's key when a request uses it.
func (t *PeerProofs) Import(proofs []PeerProof, now time.Time) int {
	if !t.enabled() {
		return 0
	}
	n := 0
	for _, p := range proofs {
		if p.KeyID == "" || !currentEpoch(p.Epoch, now) {
			continue
		}
		t.put(p)
		n++
	}
	return n
}

// Export returns the proofs of the current epochs, for a peer.
func (t *PeerProofs) Export(now time.Time) []PeerProof {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]PeerProof, 0, len(t.byKey))
	for _, p := range t.byKey {
		if currentEpoch(p.Epoch, now) {
			out = append(out, p)
		}
	}
	return out
}

// forget drops the proof of keyID unless it still binds to e (nil: the key
// is gone); revoked and expired keys lose theirs too, so a revocation
// clears them on every replica as its watch event arrives.
func (t *PeerProofs) forget(keyID string, e *keyindex.Entry, now time.Time) {
	t.mu.RLock()
	p, ok := t.byKey[keyID]
	t.mu.RUnlock()
	if !ok || (e != nil && e.Usable(now) == "" && bindsTo(p, e)) {
		return
	}
	t.mu.Lock()
	if cur, ok := t.byKey[keyID]; ok && cur == p {
		delete(t.byKey, keyID)
	}
	t.mu.Unlock()
}

// Has reports whether a proof for keyID is held (tests, metrics).
func (t *PeerProofs) Has(keyID string) bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	_, ok := t.byKey[keyID]
	return ok
}

// Len is the number of proofs held.
func (t *PeerProofs) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.byKey)
}
