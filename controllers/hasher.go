package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/codevector/codevector/internal/keys"
)

// Hasher runs argon2id with a bound on how many hashes are in flight. Each
// hash holds Params.Memory KiB for its duration, so the bound is what keeps
// a burst of key creations from growing the manager's memory without limit.
type Hasher struct {
	params keys.Params
	slots  chan struct{}
}

// NewHasher validates params and allows at most concurrency hashes at once.
func NewHasher(params keys.Params, concurrency int) (*Hasher, error) {
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("argon2 parameters: %w", err)
	}
	if concurrency < 1 {
		return nil, fmt.Errorf("argon2 concurrency must be at least 1, got %d", concurrency)
	}
	return &Hasher{params: params, slots: make(chan struct{}, concurrency)}, nil
}

// Hash returns the PHC string of k, waiting for a free slot first.
func (h *Hasher) Hash(ctx context.Context, k keys.Key) (string, error) {
	select {
	case h.slots <- struct{}{}:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	defer func() { <-h.slots }()
	start := time.Now()
	phc, err := keys.Hash(k, h.params)
	hashSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return "", fmt.Errorf("hashing key %s: %w", k.DisplayPrefix(), err)
	}
	return phc, nil
}
