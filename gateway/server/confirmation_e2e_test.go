package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// Issue 27: each replica exports how long it took from a revocation (or a
// deletion) being stored to its refusing the key, by reason, so the
// dashboard's "Revocation confirmation time" and its alert have data.
func TestRevocationConfirmationTimeIsExported(t *testing.T) {
	env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up)})
	ns := env.Namespace(t)

	for _, tc := range []struct {
		reason string
		refuse func(*gatewayv1alpha1.APIKey)
	}{
		{"revoked", func(k *gatewayv1alpha1.APIKey) {
			patch(t, k, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
		}},
		{"deleted", func(k *gatewayv1alpha1.APIKey) {
			if err := env.Client.Delete(context.Background(), k); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		k, key := env.IssueKey(t, ns, "confirmed-"+tc.reason)
		if status, _, body := chat(t, gw.URL, key.Reveal()); status != http.StatusOK {
			t.Fatalf("%s: chat before: %d %s", tc.reason, status, body)
		}
		tc.refuse(k)
		testenv.Eventually(t, 30*time.Second, func() error {
			if status, _, _ := chat(t, gw.URL, key.Reveal()); status != http.StatusUnauthorized {
				return fmt.Errorf("%s: chat answered %d, want 401", tc.reason, status)
			}
			return nil
		})
		count, sum := confirmationSeries(t, gw.MetricsURL, tc.reason)
		// The API server stores the write time to the second: up to 1 s
		// high, plus whatever a loaded machine adds.
		if count != 1 || sum < 0 || sum > 30 {
			t.Errorf("%s: codevector_gateway_revocation_confirmation_seconds count %v, sum %v s; want one refusal timed within 30 s", tc.reason, count, sum)
		}
	}
}

// confirmationSeries reads the count and sum of the confirmation
// histogram of reason from a replica's /metrics.
func confirmationSeries(t *testing.T, metricsURL, reason string) (count, sum float64) {
	t.Helper()
	resp, err := http.Get(metricsURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	value := func(suffix string) float64 {
		m := regexp.MustCompile(`(?m)^codevector_gateway_revocation_confirmation_seconds_` + suffix + `\{reason="` + reason + `"\} (\S+)$`).FindSubmatch(body)
		if m == nil {
			t.Fatalf("/metrics has no codevector_gateway_revocation_confirmation_seconds_%s{reason=%q}", suffix, reason)
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return value("count"), value("sum")
}
