package keys

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestHasherObservesEachHashAndVerifies(t *testing.T) {
	var observed []time.Duration
	h, err := NewHasher(testParams, 1, func(d time.Duration) { observed = append(observed, d) })
	if err != nil {
		t.Fatal(err)
	}
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	phc, err := h.Hash(context.Background(), k)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := Verify(k, phc); !ok || err != nil {
		t.Fatalf("Verify(hash) = %v, %v; want true", ok, err)
	}
	if len(observed) != 1 || observed[0] <= 0 {
		t.Fatalf("observed %v, want one positive duration", observed)
	}
}

func TestHasherWaitsForASlotUntilTheContextEnds(t *testing.T) {
	h, err := NewHasher(testParams, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	h.slots <- struct{}{} // the one slot is taken
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	k, _ := Generate()
	if _, err := h.Hash(ctx, k); !errors.Is(err, context.Canceled) {
		t.Fatalf("Hash with every slot taken and a cancelled context: err = %v, want context.Canceled", err)
	}
}

func TestNewHasherRefusesBadSettings(t *testing.T) {
	if _, err := NewHasher(Params{Memory: 1, Time: 1, Threads: 1}, 1, nil); err == nil {
		t.Error("NewHasher accepted memory below the minimum")
	}
	if _, err := NewHasher(testParams, 0, nil); err == nil {
		t.Error("NewHasher accepted a concurrency of 0")
	}
}
