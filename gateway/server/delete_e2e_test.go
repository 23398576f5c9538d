package server_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// A deleted APIKey lingers while the manager is down: its finalizer waits
// for the controller to remove the hash. The gateway must not wait with
// it: the key is refused as revoked as soon as the watch delivers the
// deletionTimestamp, and a stream with it is ended like a revocation.
func TestDeletedKeyIsRefusedWhileTheManagerIsDown(t *testing.T) {
	stopManager := env.StartManager(t, manager.Options{})
	up := newUpstream(t, 200*time.Millisecond) // a long, slow answer
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	ns := env.Namespace(t)
	k, key := env.IssueKey(t, ns, "deleted")
	// The gateway started before the key was issued: it works once the
	// gateway's watch has brought its hash (a moment on a loaded machine).
	testenv.Eventually(t, 5*time.Second, func() error {
		if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
			return fmt.Errorf("key to delete did not work first: %d %s", status, body)
		}
		return nil
	})

	lines := startLongStream(t, gw, key)

	stopManager()
	deletedAt := time.Now()
	if err := env.Client.Delete(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	sawDone := false
	for lines.Scan() {
		if strings.Contains(lines.Text(), "[DONE]") {
			sawDone = true
		}
	}
	if sawDone {
		t.Error("the stream ran to completion after its APIKey was deleted")
	}
	if ended := time.Since(deletedAt); ended > time.Second {
		t.Errorf("stream ended %v after the delete, want within 1s", ended)
	}

	testenv.Eventually(t, 2*time.Second, func() error { return expectStatus(t, gw.URL, key, http.StatusUnauthorized) })
	status, h, body := chat(t, gw.URL, key.Reveal())
	assert401(t, "deleted", status, h, body)
	if !strings.Contains(string(body), "revoked") {
		t.Errorf("the deleted key's owner (who proved the secret) should be told it was revoked: %s", body)
	}
	if got := authResults(t, gw, "revoked"); got == 0 {
		t.Error(`no auth_results_total{result="revoked"}: a deleted key is refused as revoked`)
	}
	if k := get(t, ns, "deleted"); k.DeletionTimestamp == nil || len(k.Finalizers) == 0 {
		t.Fatalf("APIKey deletionTimestamp %v, finalizers %v: the manager was stopped, so the finalizer must still hold it", k.DeletionTimestamp, k.Finalizers)
	}
}

// authResults is the gateway's auth_results_total for one result.
func authResults(t *testing.T, gw *gateway, result string) float64 {
	t.Helper()
	return labelledCounter(t, gw, "codevector_gateway_auth_results_total", "result", result)
}
