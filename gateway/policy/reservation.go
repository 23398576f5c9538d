package policy

import (
	"errors"
	"math/bits"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/providers"
)

// maxReservedTokens bounds what one request may set aside: a billion
// tokens, past any real request (a 10 MiB prompt is 2.6 million, 128
// answers of 128,000 tokens 16 million), and the largest count a price is
// computed for (providers.ModelPrice.Cost), so a dollar reservation can never
// be cheaper than its tokens.
const maxReservedTokens = 1_000_000_000

// errTooLarge is a reservation past maxReservedTokens.
var errTooLarge = errors.New("the request asks for more tokens than one request may reserve")

// reservation is what one request sets aside before it is forwarded: its
// estimated input plus the most output it can be billed for, outputPerAnswer
// for each of its answers. Every part is a count the client influences
// (the body's size, max_tokens, n), so the sum and product are checked:
// a reservation is never negative and never wraps (issue 23: a max_tokens
// of 2^63-1 once wrapped to a negative take, which refunded the budget).
type reservation struct {
	input           int64
	outputPerAnswer int64
	answers         int64
}

// reservationOf is the reservation for req as metering read it.
func reservationOf(req metering.Request) reservation {
	r := reservation{input: max(req.EstimatedInputTokens, 0), answers: max(req.Answers, 1)}
	if req.Billing == metering.BillingTokens {
		r.outputPerAnswer = max(req.MaxOutputTokens, 0)
	}
	return r
}

// output is the most output the request can be billed for.
func (r reservation) output() (int64, error) {
	out, ok := mulTokens(r.outputPerAnswer, r.answers)
	if !ok {
		return 0, errTooLarge
	}
	return out, nil
}

// tokens is the whole reservation in tokens: input plus output.
func (r reservation) tokens() (int64, error) {
	out, err := r.output()
	if err != nil {
		return 0, err
	}
	total, ok := addTokens(r.input, out)
	if !ok {
		return 0, errTooLarge
	}
	return total, nil
}

// cost is the whole reservation priced.
func (r reservation) cost(price providers.ModelPrice) (gatewayv1alpha1.NanoUSD, error) {
	out, err := r.output()
	if err != nil {
		return 0, err
	}
	if _, err := r.tokens(); err != nil {
		return 0, err
	}
	return price.Cost(r.input, out), nil
}

// outputThatFits is the largest output per answer whose reservation fits
// in room tokens, with the input; 0 when not even one token per answer
// does.
func (r reservation) outputThatFits(room int64) int64 {
	if room <= r.input {
		return 0
	}
	return (room - r.input) / r.answers
}

// outputThatCosts is the largest output per answer whose reservation
// costs at most room at price, with the input; 0 when not even one token
// per answer fits. Output that costs nothing fits whatever the room.
func (r reservation) outputThatCosts(room gatewayv1alpha1.NanoUSD, price providers.ModelPrice) int64 {
	inputCost := price.Cost(r.input, 0)
	if room <= inputCost {
		return 0
	}
	if price.Output <= 0 {
		return r.outputPerAnswer
	}
	// (room - inputCost) × 10^6 / price per million, in 128 bits: the
	// product of a large budget's nano-dollars and a million overflows
	// int64. Cost rounds each request up, so rounding down here keeps a
	// clamped request within room.
	hi, lo := bits.Mul64(uint64(room-inputCost), 1_000_000)
	if hi >= uint64(price.Output) {
		return r.outputPerAnswer // more room than any output can use
	}
	tokens, _ := bits.Div64(hi, lo, uint64(price.Output))
	perAnswer := tokens / uint64(r.answers)
	if perAnswer > uint64(r.outputPerAnswer) {
		return r.outputPerAnswer
	}
	// Cost's rounding up may add a nano-dollar: one token less keeps the
	// clamped reservation within room.
	for perAnswer > 0 {
		c := reservation{input: r.input, outputPerAnswer: int64(perAnswer), answers: r.answers}
		if cost, err := c.cost(price); err == nil && cost <= room {
			break
		}
		perAnswer--
	}
	return int64(perAnswer)
}

// addTokens and mulTokens are checked arithmetic on non-negative counts:
// false when an operand is negative or the result passes
// maxReservedTokens.
func addTokens(a, b int64) (int64, bool) {
	if a < 0 || b < 0 || a > maxReservedTokens || b > maxReservedTokens-a {
		return 0, false
	}
	return a + b, true
}

func mulTokens(a, b int64) (int64, bool) {
	if a < 0 || b < 0 {
		return 0, false
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	if hi != 0 || lo > maxReservedTokens {
		return 0, false
	}
	return int64(lo), true
}
