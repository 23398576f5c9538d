package controllers_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A new key costs the API server five requests: the finalizer, the hash
// Secret, the reveal Secret, status Active and the Issued event. The reads
// that look for an interrupted issue's leftovers (the APIKey from the API
// server, its hash Secret, its reveal Secrets in two namespaces) are for
// keys a pass of ours has touched before; every key of a burst used to pay
// for them, and the issue rate with them (docs/benchmarks.md, "How each
// figure is measured").
func TestAFreshKeyIsIssuedInFiveRequests(t *testing.T) {
	var counter testenv.RequestCounter
	testenv.RunManager(t, counter.Wrap(env.Config), manager.Options{})
	ns := env.Namespace(t)

	// since counts the requests after before, watches aside (a watch the
	// API server ends is reopened at any time).
	since := func(before map[string]int) map[string]int {
		out := map[string]int{}
		for kind, n := range counter.Snapshot() {
			if d := n - before[kind]; d > 0 && !strings.HasPrefix(kind, "watch ") {
				out[kind] = d
			}
		}
		return out
	}
	// issue creates a key and waits until it is Active and its Issued
	// event has been sent (events are sent after the status write, in the
	// background).
	issue := func(name string) map[string]int {
		before := counter.Snapshot()
		create(t, newKey(ns, name))
		env.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 10*time.Second)
		var got map[string]int
		testenv.Eventually(t, 10*time.Second, func() error {
			if got = since(before); got["create events"] < 1 {
				return fmt.Errorf("no event sent yet; requests so far: %v", got)
			}
			return nil
		})
		return got
	}
	// The first key also pays for the manager's start (discovery, its
	// informers' lists, the peer credential).
	issue("warm-up")

	want := map[string]int{
		"patch apikeys":        1, // the finalizer, before any Secret
		"create secrets":       2, // hash, then reveal
		"patch apikeys/status": 1, // Active
		"create events":        1, // Issued
	}
	if got := issue("fresh"); !maps.Equal(got, want) {
		t.Errorf("issuing a new key took these API requests: %v, want %v", got, want)
	}
}
