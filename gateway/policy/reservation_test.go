package policy

import (
	"math"
	"testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
)

func TestReservationArithmeticIsChecked(t *testing.T) {
	tests := []struct {
		name string
		r    reservation
		want int64 // -1: refused as too large
	}{
		{"ordinary", reservation{input: 30, outputPerAnswer: 1000, answers: 1}, 1030},
		{"n", reservation{input: 5, outputPerAnswer: 1000, answers: 128}, 128005},
		{"output past int64 once multiplied", reservation{input: 1, outputPerAnswer: math.MaxInt64, answers: 2}, -1},
		{"sum past int64", reservation{input: math.MaxInt64, outputPerAnswer: 1, answers: 1}, -1},
		{"past the largest reservation", reservation{input: 1, outputPerAnswer: maxReservedTokens, answers: 1}, -1},
		{"negative input", reservation{input: -5, outputPerAnswer: 10, answers: 1}, -1},
		{"negative output", reservation{input: 5, outputPerAnswer: -10, answers: 1}, -1},
		{"the largest", reservation{input: 0, outputPerAnswer: maxReservedTokens / 128, answers: 128}, maxReservedTokens / 128 * 128},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.r.tokens()
			if tt.want < 0 {
				if err == nil {
					t.Fatalf("tokens() = %d, want it refused", got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("tokens() = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestOutputThatFits(t *testing.T) {
	r := reservation{input: 10, outputPerAnswer: 4096, answers: 2}
	if got := r.outputThatFits(100); got != 45 {
		t.Errorf("100 tokens of room: %d per answer, want 45", got)
	}
	if got := r.outputThatFits(11); got != 0 {
		t.Errorf("room for the prompt and half a token: %d, want 0", got)
	}
	// gpt-4o: $2.50 in, $10 out per million; $0.01 of room, 10 tokens in.
	price := providers.ModelPrice{Input: 2_500_000_000, Output: 10_000_000_000}
	got := r.outputThatCosts(10_000_000, price)
	fits := reservation{input: 10, outputPerAnswer: got, answers: 2}
	cost, err := fits.cost(price)
	if got < 1 || err != nil || cost > 10_000_000 {
		t.Errorf("$0.01 of room: %d per answer costs %v, %v", got, cost, err)
	}
	if more := (reservation{input: 10, outputPerAnswer: got + 1, answers: 2}); mustCost(t, more, price) <= 10_000_000 {
		t.Errorf("%d per answer is not the most that fits $0.01", got)
	}
	// A huge dollar budget: more room than any output uses.
	if got := r.outputThatCosts(gatewayv1alpha1.NanoUSD(math.MaxInt64), price); got != r.outputPerAnswer {
		t.Errorf("unbounded room: %d, want the request's own bound %d", got, r.outputPerAnswer)
	}
}

func mustCost(t *testing.T, r reservation, price providers.ModelPrice) gatewayv1alpha1.NanoUSD {
	t.Helper()
	c, err := r.cost(price)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// FuzzReservation: whatever the counts a client and a providers file can
// produce, a reservation is refused or non-negative and bounded, and the
// output that fits a room really fits it.
func FuzzReservation(f *testing.F) {
	f.Add(int64(30), int64(math.MaxInt64), int64(1), int64(300), int64(2_500_000_000), int64(10_000_000_000))
	f.Add(int64(5), int64(1000), int64(128), int64(5000), int64(0), int64(1))
	f.Add(int64(math.MaxInt64), int64(1), int64(1), int64(math.MaxInt64), int64(1), int64(1))
	f.Fuzz(func(t *testing.T, input, output, answers, room, priceIn, priceOut int64) {
		r := reservation{input: input, outputPerAnswer: output, answers: max(answers, 1)}
		tokens, err := r.tokens()
		if err == nil && (tokens < 0 || tokens > maxReservedTokens || tokens < r.input) {
			t.Fatalf("%+v: tokens() = %d", r, tokens)
		}
		if err != nil || room < 0 {
			return
		}
		if fit := r.outputThatFits(room); fit > 0 {
			c := reservation{input: r.input, outputPerAnswer: fit, answers: r.answers}
			if n, err := c.tokens(); err != nil || n > room {
				t.Fatalf("%+v: %d per answer fits %d tokens of room, but reserves %d (%v)", r, fit, room, n, err)
			}
		}
		price := providers.ModelPrice{Input: gatewayv1alpha1.NanoUSD(priceIn % 1_000_000_000_001), Output: gatewayv1alpha1.NanoUSD(priceOut % 1_000_000_000_001)}
		if price.Input < 0 || price.Output < 0 {
			return
		}
		cost, err := r.cost(price)
		if err != nil || cost < 0 {
			t.Fatalf("%+v at %+v: cost %d, %v", r, price, cost, err)
		}
		if fit := r.outputThatCosts(gatewayv1alpha1.NanoUSD(room), price); fit > 0 && fit < r.outputPerAnswer {
			c := reservation{input: r.input, outputPerAnswer: fit, answers: r.answers}
			if cc, err := c.cost(price); err != nil || cc > gatewayv1alpha1.NanoUSD(room) {
				t.Fatalf("%+v at %+v: %d per answer fits $%v of room, but costs %v (%v)", r, price, fit, gatewayv1alpha1.NanoUSD(room), cc, err)
			}
		}
	})
}
