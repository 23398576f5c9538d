package keys

import (
	"context"
	"fmt"
	"time"
)

// Hasher runs argon2id with a bound on how many hashes are in flight. Each
// hash holds Params.Memory KiB for its duration, so the bound is what keeps
// a burst of key creations from growing the manager's memory without limit.
type Hasher struct {
	params  Params
	slots   chan struct{}
	observe func(time.Duration)
}

// NewHasher validates params and allows at most concurrency hashes at once.
// observe, if not nil, receives the duration of every hash (not counting
// the wait for a slot): the manager feeds its argon2 histogram with it, and
// this package stays free of metrics.
func NewHasher(params Params, concurrency int, observe func(time.Duration)) (*Hasher, error) {
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("argon2 parameters: %w", err)
	}
	if concurrency < 1 {
		return nil, fmt.Errorf("argon2 concurrency must be at least 1, got %d", concurrency)
	}
	if observe == nil {
		observe = func(time.Duration) {}
	}
	return &Hasher{params: params, slots: make(chan struct{}, concurrency), observe: observe}, nil
}

// Hash returns the PHC string of k, waiting for a free slot first.
func (h *Hasher) Hash(ctx context.Context, k Key) (string, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-h.slots }()
	start := time.Now()
	phc, err := Hash(k, h.params)
	h.observe(time.Since(start))
	if err != nil {
		return "", fmt.Errorf("hashing key %s: %w", k.DisplayPrefix(), err)
	}
	return phc, nil
}
