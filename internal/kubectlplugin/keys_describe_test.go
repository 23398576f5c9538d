package kubectlplugin

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// TestGetAndListTimes checks what `get NAME` and `list` say of times and
// usage at their edges: no line with an empty label, no "(in just now)",
// and a key about to expire shows when, not just the date.
func TestGetAndListTimes(t *testing.T) {
	now := time.Date(2026, 12, 7, 20, 11, 30, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	key := gatewayv1alpha1.APIKey{
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "laptop",
			// The API server's clock a few seconds ahead of this one.
			CreationTimestamp: *at(5 * time.Second)},
		Spec: gatewayv1alpha1.APIKeySpec{Owner: "alice@example.com", ExpiresAt: gatewayv1alpha1.NewExpiry(at(time.Minute).Time)},
		Status: gatewayv1alpha1.APIKeyStatus{
			Phase: gatewayv1alpha1.PhaseActive, Prefix: "cvk_abcdefgh",
			LastUsedAt: at(-10 * time.Second),
			Usage:      &gatewayv1alpha1.Usage{PeriodStart: *at(-time.Hour), Requests: 4, InputTokens: 12, OutputTokens: 30, Summary: "42 tokens"},
		},
	}

	var out bytes.Buffer
	if err := describeKey(&out, &key, now); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, l := range strings.Split(strings.TrimRight(got, "\n"), "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), ":") {
			t.Errorf("a line with an empty label: %q", l)
		}
	}
	for _, bad := range []string{"in just now", "in 0 ", "(soon)"} {
		if strings.Contains(got, bad) {
			t.Errorf("get says %q:\n%s", bad, got)
		}
	}
	spaces := regexp.MustCompile(` +`)
	for _, want := range []string{
		"\nCreated: 2026-12-07T20:11:35Z (in less than a minute)\n",
		"\nExpires: 2026-12-07T20:12:30Z (in 1 minute)\n",
		"\nLast used: 2026-12-07T20:11:20Z (just now)\n",
		// The detail on a line of its own, under the value.
		"\nUsage: 42 tokens since 2026-12-07T19:11:30Z\n 4 requests, 12 input tokens, 30 output tokens\n",
	} {
		if !strings.Contains(spaces.ReplaceAllString(got, " "), want) {
			t.Errorf("get lacks %q:\n%s", want, got)
		}
	}

	for _, tc := range []struct {
		expiresIn time.Duration
		want      string
	}{
		{time.Minute, "2026-12-07 20:12 UTC (in 1 minute)"},
		{59 * time.Second, "2026-12-07 20:12 UTC (in 1 minute)"},
		{10 * time.Second, "2026-12-07 20:11 UTC (in less than a minute)"},
		{3 * time.Hour, "2026-12-07 23:11 UTC (in 3 hours)"},
		{6*24*time.Hour + 23*time.Hour, "2026-12-14 19:11 UTC (in 7 days)"},
		{8 * 24 * time.Hour, "2026-12-15"},
		{-time.Minute, "2026-12-07"}, // Expired: the date it stopped working
	} {
		k := key.DeepCopy()
		k.Spec.ExpiresAt = gatewayv1alpha1.NewExpiry(at(tc.expiresIn).Time)
		if got := expires(k, now); got != tc.want {
			t.Errorf("list's EXPIRES for a key expiring in %v: %q, want %q", tc.expiresIn, got, tc.want)
		}
	}
}
