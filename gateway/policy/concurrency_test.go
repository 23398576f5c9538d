package policy

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	testingclock "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/keyindex"
	"github.com/codevector/codevector/gateway/metering"
	"github.com/codevector/codevector/gateway/quota"
)

// A key with a concurrency limit of 1 on one replica: the request in
// flight is counted in each window it outlasts, and given back in every
// one; a slot nobody gives back (its replica died) ends with its window.
// The gateway's end-to-end tests (gateway/server) hold the same across
// replicas and peer list changes.
func TestConcurrencySlotsAcrossWindows(t *testing.T) {
	// Ahead of the wall clock, as quota.Config asks, at a window's start.
	start := time.Now().Truncate(concurrencyWindow).Add(concurrencyWindow)
	clk := testingclock.NewFakeClock(start)
	q, err := quota.New(context.Background(), quota.Config{Clock: clk, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = q.Close() })
	engine := NewEngine()
	engine.Start(q)
	reg := prometheus.NewRegistry()
	m := New(Options{Engine: engine, Clock: clk, Metrics: NewMetrics(reg), Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	rm := &requestMeter{m: m, e: &keyindex.Entry{APIKeyFacts: &keyindex.APIKeyFacts{
		Name: types.NamespacedName{Namespace: "team-a", Name: "k"}, UID: "uid-1",
		Policy: &keyindex.Policy{Limits: &gatewayv1alpha1.Limits{ConcurrentRequests: ptr.To[int32](1)}},
	}}}
	req := metering.Request{Method: http.MethodPost, Path: "/v1/chat/completions", Model: "m", Billing: metering.BillingTokens,
		EstimatedInputTokens: 10, MaxOutputTokens: 100, Answers: 1}
	admit := func(when string, want bool) metering.Admission {
		t.Helper()
		adm := rm.Admit(context.Background(), req)
		if got := adm.Refusal == nil; got != want {
			t.Fatalf("%s: admitted %v (%+v), want %v", when, got, adm.Refusal, want)
		}
		return adm
	}
	rebook := func() { m.slots.book(q, "", clk.Now(), nil) }
	done := metering.Usage{Status: 200, InputTokens: 5, OutputTokens: 7, Complete: true}

	long := admit("the first request", true)
	admit("a second while it runs", false)
	// The re-count 5 s before the next window, then the window.
	clk.SetTime(start.Add(concurrencyWindow - rebookLead))
	rebook()
	if got := testutil.ToFloat64(m.metrics.rebooked); got != 1 {
		t.Errorf("slots counted again: %v, want 1", got)
	}
	clk.SetTime(start.Add(concurrencyWindow + time.Second))
	admit("a second request in the next window", false)
	long.Settle(done)
	short := admit("a request once the first ended", true)

	// Admitted within the last 5 s of a window, a request is counted in
	// the next one too, and given back in both.
	clk.SetTime(start.Add(2*concurrencyWindow - time.Second))
	short.Settle(done)
	late := admit("a request a second before a window ends", true)
	clk.SetTime(start.Add(2*concurrencyWindow + time.Second))
	admit("a second request in the next window", false)
	late.Settle(done)

	// A slot never given back, and never counted again (its replica
	// died), ends with its window.
	admit("a request once the late one ended, never settled", true)
	clk.SetTime(start.Add(3*concurrencyWindow + time.Second))
	admit("a request a window after a slot was lost", true)
}
