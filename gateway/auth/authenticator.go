package auth

import (
	"cmp"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"net/http"
	"net/netip"
	"time"

	"k8s.io/utils/clock"

	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/keys"
)

// Options tune the Authenticator; zero values mean the defaults.
type Options struct {
	// Argon2Concurrency bounds argon2 verifications in flight, and so the
	// memory they hold (each takes the hash's m KiB). Default: 2.
	Argon2Concurrency int
	// Argon2Wait is how long a request waits for a free argon2 slot before
	// it gets a 503. Default: 5s.
	Argon2Wait time.Duration
	// VerifiedCacheSize bounds the verified-key cache. Default: 1,000,000.
	VerifiedCacheSize int
	// Per key ID: verifications allowed in a burst, and one more per
	// KeyRefill. Default: 5, one per 10s.
	KeyBurst  int
	KeyRefill time.Duration
	// Per client address: failed verifications allowed in a burst, and one
	// more per ClientRefill. Default: 20, one per 3s.
	ClientBurst  int
	ClientRefill time.Duration
	// The tarpit: per client address, refusals of any kind allowed in a
	// burst (RefusalBurst, default 100) and one more per RefusalRefill
	// (default 100ms); past that each refusal is answered after about
	// RefusalDelay (default 1s, jittered by half), at most MaxHeldRefusals
	// (default 4,096) at a time. A negative RefusalDelay turns the tarpit
	// off.
	RefusalBurst    int
	RefusalRefill   time.Duration
	RefusalDelay    time.Duration
	MaxHeldRefusals int
	// TrustedProxies are the peers (load balancers, ingress controllers)
	// whose X-Forwarded-For is believed: behind them the client is the
	// rightmost address that is not itself a trusted proxy. Empty: the
	// peer is the client.
	TrustedProxies []netip.Prefix
	// Clock is the time keys expire by, rate limits refill by and the
	// tarpit holds refusals for; tests step a fake one. Default
	// clock.RealClock{}.
	Clock   clock.WithDelayedExecution
	Metrics *Metrics
}

// Authenticator decides whether a key may use the gateway.
type Authenticator struct {
	index    *keyindex.Index
	verified *verifiedCache
	proofs   *PeerProofs
	limiter  *failureLimiter
	tarpit   *tarpit
	slots    chan struct{}
	wait     time.Duration
	clock    clock.WithDelayedExecution
	metrics  *Metrics
	inflight inflight
	trusted  []netip.Prefix
	// afterAuthenticate, set only by tests, runs between a request's
	// authentication and its registration as in flight: where an index
	// change that OnIndexChange cannot see yet must still end it.
	afterAuthenticate func()
}

// New returns an Authenticator over index, registered for the index's
// changes (OnIndexChange) so in-flight requests of a revoked key are
// ended.
func New(index *keyindex.Index, o Options) *Authenticator {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.Argon2Concurrency, 2)
	def(&o.VerifiedCacheSize, 1_000_000)
	def(&o.KeyBurst, 5)
	def(&o.ClientBurst, 20)
	def(&o.RefusalBurst, 100)
	def(&o.MaxHeldRefusals, 4096)
	defDur(&o.Argon2Wait, 5*time.Second)
	defDur(&o.KeyRefill, 10*time.Second)
	defDur(&o.ClientRefill, 3*time.Second)
	defDur(&o.RefusalRefill, 100*time.Millisecond)
	o.RefusalDelay = cmp.Or(o.RefusalDelay, time.Second) // negative: no tarpit
	o.Clock = cmp.Or[clock.WithDelayedExecution](o.Clock, clock.RealClock{})
	if o.Metrics == nil {
		o.Metrics = NewMetrics(nil)
	}
	a := &Authenticator{
		index:    index,
		verified: newVerifiedCache(o.VerifiedCacheSize),
		proofs:   newPeerProofs(o.VerifiedCacheSize),
		limiter:  newFailureLimiter(rateSpec{o.KeyRefill, o.KeyBurst}, rateSpec{o.ClientRefill, o.ClientBurst}),
		tarpit:   newTarpit(o.Clock, o.RefusalDelay, rateSpec{o.RefusalRefill, o.RefusalBurst}, o.MaxHeldRefusals, o.Metrics),
		slots:    make(chan struct{}, o.Argon2Concurrency),
		wait:     o.Argon2Wait,
		clock:    newForwardClock(o.Clock),
		metrics:  o.Metrics,
		inflight: inflight{byKey: map[string]*inflightRequest{}},
		trusted:  o.TrustedProxies,
	}
	if index != nil { // tests of the parts that need no keys
		index.OnChange(a.OnIndexChange)
	}
	return a
}

// Failure is a refused request: the HTTP status and the words the client
// sees. Reason is for metrics and logs only; it may be more precise than
// Message, which says nothing the caller has not proven it may know.
type Failure struct {
	Status  int
	Code    string
	Message string
	Reason  string
}

var (
	failInvalid = func(reason string) *Failure {
		return &Failure{http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided. Check the key you are using, or create a new one in the console.", reason}
	}
	failMissing = &Failure{http.StatusUnauthorized, "invalid_api_key", "No API key provided. Send it as 'Authorization: Bearer <key>' (or the 'x-api-key' header).", "missing"}
	failRevoked = &Failure{http.StatusUnauthorized, "invalid_api_key", "This API key has been revoked. Create a new key in the console.", "revoked"}
	failExpired = &Failure{http.StatusUnauthorized, "invalid_api_key", "This API key has expired. Create a new key in the console.", "expired"}
	failLimited = &Failure{http.StatusTooManyRequests, "rate_limit_exceeded", "Too many failed authentication attempts. Wait a minute and try again.", "rate_limited"}
	failBusy    = &Failure{http.StatusServiceUnavailable, "server_busy", "The gateway is busy verifying keys. Retry shortly.", "busy"}
	// failUnresolved: a replica still loading its keys could not read this
	// one's APIKey. Whether the key works is not known, so it is neither
	// refused nor let through.
	failUnresolved = &Failure{http.StatusServiceUnavailable, "server_busy", "The gateway is still loading API keys and could not look this one up. Retry shortly.", "unresolved"}
)

// Authenticate checks raw, the key a client sent from address client.
func (a *Authenticator) Authenticate(ctx context.Context, raw, client string) (*keyindex.Entry, *Failure) {
	return a.authenticateFrom(ctx, raw, func() string { return client })
}

// authenticateFrom is Authenticate with the client's address worked out
// only if it is needed: the per-client limits apply to argon2 runs, which
// a key served from the verified cache does not reach.
func (a *Authenticator) authenticateFrom(ctx context.Context, raw string, clientOf func() string) (*keyindex.Entry, *Failure) {
	start := time.Now()
	e, f := a.authenticate(ctx, raw, clientOf)
	result := "ok"
	if f != nil {
		result = f.Reason
	}
	a.metrics.observe(result, time.Since(start))
	return e, f
}

// authenticate takes raw through the steps of docs/design.md, section 7.1,
// cheapest first: its format, the verified cache, the quick check, a
// peer's proof, and argon2id.
func (a *Authenticator) authenticate(ctx context.Context, raw string, clientOf func() string) (*keyindex.Entry, *Failure) {
	k, err := keys.Parse(raw)
	if err != nil {
		// Format and checksum are checked before any lookup: a typo or a
		// random string costs no map access and no argon2.
		if errors.Is(err, keys.ErrChecksum) {
			return nil, failInvalid("bad_checksum")
		}
		return nil, failInvalid("malformed")
	}
	now := a.clock.Now()
	e := a.index.Lookup(k.ID())
	mac := a.verified.mac(k.Reveal())

	if f, decided := a.fromVerifiedCache(k, e, mac, now); decided {
		if f != nil {
			return nil, f
		}
		return e, nil
	}
	a.metrics.cacheMisses.Inc()
	// The quick check runs for every key, known or not (against a fixed
	// salt when there is no hash), so every refusal here costs the same
	// and timing does not tell a stranger which key IDs exist.
	plausible := passesQuickCheck(k, e)
	if plausible {
		// A gateway that has just started may hold a key's hash before its
		// APIKey (keyindex/listing.go): it reads the APIKey now.
		var err error
		if e, err = a.index.Resolve(ctx, e); err != nil {
			return nil, failUnresolved
		}
	}
	if reason := e.Usable(now); reason != "" {
		// Unproven secret: the reply stays generic; the metric is precise.
		return nil, failInvalid(string(reason))
	}
	if !plausible {
		// Almost every wrong secret ends here: no argon2, and nothing
		// charged to the key's budget or to the client's failures, so a
		// stranger who knows a prefix cannot use up the owner's
		// verifications, nor a bad client behind a shared address those of
		// its neighbours (keys.QuickCheck says why this is safe).
		return nil, failInvalid("wrong_secret")
	}
	if epoch := a.proofs.check(e, k.Reveal(), now); epoch != 0 {
		// A peer verified this very key against this hash: one HMAC
		// instead of argon2id (a new replica after a rollout).
		a.metrics.peerProofHits.Inc()
		a.verified.put(mac, proof{keyID: e.KeyID, uid: e.UID, version: e.Version, sharedEpoch: epoch})
		return e, nil
	}
	if f := a.proveWithArgon2(ctx, k, e, mac, clientOf()); f != nil {
		return nil, f
	}
	return e, nil
}

// fromVerifiedCache decides from the verified cache, when the caller has
// proven this secret for e's APIKey before: usable and of the same
// version, the key is accepted (decided, f nil); revoked or expired, the
// caller may be told precisely why (f). Anything else is not decided.
func (a *Authenticator) fromVerifiedCache(k keys.Key, e *keyindex.Entry, mac [sha256.Size]byte, now time.Time) (f *Failure, decided bool) {
	p, ok := a.verified.get(mac)
	if !ok || e == nil || p.keyID != e.KeyID || p.uid != e.UID {
		return nil, false
	}
	switch e.Usable(now) {
	case keyindex.ReasonRevoked:
		return failRevoked, true
	case keyindex.ReasonExpired:
		return failExpired, true
	case "":
		if p.version != e.Version {
			return nil, false
		}
		a.metrics.cacheHits.Inc()
		if p.sharedEpoch != 0 && p.sharedEpoch != epochOf(now) {
			// Renew the shared proof once per epoch while the key is in
			// use, so peers keep skipping argon2 for it.
			p.sharedEpoch = a.proofs.record(e, k.Reveal(), now)
			a.verified.put(mac, p)
		}
		return nil, true
	}
	return nil, false
}

// proveWithArgon2 verifies k against e's hash with argon2id, within the
// concurrency bound and the failure limits of its key ID and of client,
// and caches the proof; nil means proven.
func (a *Authenticator) proveWithArgon2(ctx context.Context, k keys.Key, e *keyindex.Entry, mac [sha256.Size]byte, client string) *Failure {
	waitCtx, cancel := context.WithTimeout(ctx, a.wait)
	defer cancel()
	release, ok := a.limiter.acquire(waitCtx, client)
	if !ok {
		return failBusy
	}
	defer release()
	// Requests for one key that queued together: the first verification
	// may have proven it while this one waited.
	if p, ok := a.verified.get(mac); ok && p.keyID == e.KeyID && p.uid == e.UID && p.version == e.Version {
		return nil
	}
	if !a.limiter.allow(k.ID(), client, a.clock.Now()) {
		return failLimited
	}
	ok, f := a.verify(waitCtx, k, e)
	if f != nil {
		return f
	}
	if !ok {
		a.limiter.failed(client, a.clock.Now())
		return failInvalid("wrong_secret")
	}
	epoch := a.proofs.record(e, k.Reveal(), a.clock.Now())
	a.verified.put(mac, proof{keyID: e.KeyID, uid: e.UID, version: e.Version, sharedEpoch: epoch})
	return nil
}

// unknownKeySalt stands in for a hash's salt when a key ID has none, so an
// unknown key costs the same quick check as a known one.
var unknownKeySalt = make([]byte, 16)

// passesQuickCheck reports whether k may be e's key as far as its 16-bit
// quick check can tell; true when e's hash Secret carries none.
func passesQuickCheck(k keys.Key, e *keyindex.Entry) bool {
	salt, want, has := unknownKeySalt, uint16(0), false
	if e != nil && e.Hash != nil {
		salt, want, has = e.Hash.Salt, e.QuickCheck, e.HasQuickCheck
	}
	got := keys.QuickCheck(k, salt)
	return subtle.ConstantTimeEq(int32(got), int32(want)) == 1 || !has
}

// verify runs argon2id under the concurrency bound, waiting for a slot
// until ctx ends.
func (a *Authenticator) verify(ctx context.Context, k keys.Key, e *keyindex.Entry) (bool, *Failure) {
	select {
	case a.slots <- struct{}{}:
	case <-ctx.Done():
		return false, failBusy
	}
	a.metrics.argon2InFlight.Inc()
	ok := e.Hash.Verify(k)
	a.metrics.argon2InFlight.Dec()
	a.metrics.argon2Total.Inc()
	<-a.slots
	return ok, nil
}

// Sweep drops rate-limit state that has expired; call it every minute or so.
func (a *Authenticator) Sweep() {
	a.limiter.sweep(a.clock.Now())
	a.tarpit.sweep(a.clock.Now())
}

// VerifiedKeys is the size of the verified-key cache.
func (a *Authenticator) VerifiedKeys() int { return a.verified.len() }

// PeerProofs is the table of verified-key proofs this replica shares with
// its peers; it is off until enabled.
func (a *Authenticator) PeerProofs() *PeerProofs { return a.proofs }
