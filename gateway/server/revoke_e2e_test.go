package server_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
)

func TestRevocationReachesEveryReplicaWithinOneSecond(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	providers := providersFor(t, up, up)
	replicas := []*gateway{startGateway(t, server.Options{Providers: providers}), startGateway(t, server.Options{Providers: providers})}
	k, key := env.IssueKey(t, env.Namespace(t), "to-revoke")
	for i, gw := range replicas {
		if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
			t.Fatalf("replica %d before revocation: %d %s", i, status, body)
		}
	}

	revokedAt := time.Now()
	patch(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	var wg sync.WaitGroup
	for i, gw := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				status, _, _ := chat(t, gw.URL, key.Reveal())
				if status == http.StatusUnauthorized {
					t.Logf("replica %d refused the key %v after the revocation write", i, time.Since(revokedAt).Round(time.Millisecond))
					return
				}
				if time.Since(revokedAt) > time.Second {
					t.Errorf("replica %d still accepts the key 1s after revocation (status %d)", i, status)
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

// A stream whose key is revoked mid-flight ends within the watch latency
// instead of running to completion.
func TestRevocationEndsInFlightStream(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 200*time.Millisecond) // a long, slow answer
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	k, key := env.IssueKey(t, env.Namespace(t), "streamer")

	lines := startLongStream(t, gw, key)

	revokedAt := time.Now()
	patch(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	sawDone := false
	for lines.Scan() {
		if strings.Contains(lines.Text(), "[DONE]") {
			sawDone = true
		}
	}
	ended := time.Since(revokedAt)
	if sawDone {
		t.Fatal("the stream ran to completion after its key was revoked")
	}
	if ended > time.Second {
		t.Errorf("stream ended %v after revocation, want within 1s", ended)
	}
	t.Logf("stream ended %v after the revocation write", ended.Round(time.Millisecond))
	select {
	case err := <-up.done:
		if err == nil {
			t.Error("upstream request finished without being cancelled")
		}
	case <-time.After(2 * time.Second):
		t.Error("upstream request still running 2s after the stream was ended")
	}
}
