package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// assert401 checks the OpenAI-style refusal of DESIGN 7.1.
func assert401(t *testing.T, what string, status int, h http.Header, body []byte) {
	t.Helper()
	if status != http.StatusUnauthorized {
		t.Errorf("%s: status = %d, want 401 (body %s)", what, status, body)
		return
	}
	if !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("%s: WWW-Authenticate = %q, want Bearer", what, h.Get("WWW-Authenticate"))
	}
	var e struct {
		Error struct{ Message, Type, Code string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error.Type != "invalid_request_error" || e.Error.Code != "invalid_api_key" || e.Error.Message == "" {
		t.Errorf("%s: body = %s, want an OpenAI-style invalid_api_key error", what, body)
	}
}

func TestRefusedKeys(t *testing.T) {
	clk := testenv.FakeClock(t) // the gateway's; the manager keeps real time
	stopManager := env.StartManager(t, manager.Options{})
	up := newUpstream(t, 0)
	gw := startGateway(t, server.Options{Providers: providersFor(t, up, up), Clock: clk})
	ns := env.Namespace(t)
	_, good := env.IssueKey(t, ns, "good")
	revokedKey, revoked := env.IssueKey(t, ns, "revoked")
	deletedKey, deleted := env.IssueKey(t, ns, "deleted")

	if status, _, body := chat(t, gw.URL, good.Reveal()); status != http.StatusOK {
		t.Fatalf("good key: status %d %s", status, body)
	}

	other, _ := keys.Generate()
	wrongSecret := sameIDOtherSecret(t, good)
	badChecksum := good.Reveal()[:keys.Length-1] + flip(good.Reveal()[keys.Length-1:])
	cases := map[string]string{
		"no header":                "",
		"malformed":                "not-a-key",
		"bad checksum":             badChecksum,
		"unknown key ID":           other.Reveal(),
		"wrong secret for real ID": wrongSecret.Reveal(),
	}
	for what, key := range cases {
		status, h, body := chat(t, gw.URL, key)
		assert401(t, what, status, h, body)
	}
	// Other header shapes are refused too.
	for what, set := range map[string]func(*http.Request){
		"basic auth": func(r *http.Request) { r.SetBasicAuth("user", good.Reveal()) },
		"two different headers": func(r *http.Request) {
			r.Header.Set("Authorization", "Bearer "+good.Reveal())
			r.Header.Set("x-api-key", other.Reveal())
		},
	} {
		req, _ := http.NewRequest(http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{}`))
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body [512]byte
		n, _ := resp.Body.Read(body[:])
		resp.Body.Close()
		assert401(t, what, resp.StatusCode, resp.Header, body[:n])
	}
	// x-api-key, as Anthropic clients send it, is accepted.
	req, _ := http.NewRequest(http.MethodPost, gw.URL+"/gateway/openai/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	req.Header.Set("x-api-key", good.Reveal())
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("x-api-key: %v %v", resp.StatusCode, err)
	}

	// Revoked: after being used (so it is in the verified cache).
	if status, _, _ := chat(t, gw.URL, revoked.Reveal()); status != http.StatusOK {
		t.Fatalf("key to revoke did not work first: %d", status)
	}
	patch(t, revokedKey, func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true })
	testenv.Eventually(t, 5*time.Second, func() error { return expectStatus(t, gw.URL, revoked, http.StatusUnauthorized) })
	status, h, body := chat(t, gw.URL, revoked.Reveal())
	assert401(t, "revoked", status, h, body)
	if !strings.Contains(string(body), "revoked") {
		t.Errorf("revoked key's owner (who proved the secret) should be told it was revoked: %s", body)
	}

	// Deleted APIKey.
	if err := env.Client.Delete(context.Background(), deletedKey); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 5*time.Second, func() error { return expectStatus(t, gw.URL, deleted, http.StatusUnauthorized) })

	// Expired, with the manager stopped: only the gateway can enforce it.
	// The gateway's clock is stepped to the expiry the controller resolved
	// (creationTimestamp + TTL, in the API server's time).
	expiringKey, expiring := env.IssueKey(t, ns, "expiring", func(k *gatewayv1alpha1.APIKey) { k.Spec.TTL = &gatewayv1alpha1.Lifetime{Duration: time.Hour} })
	if status, _, _ := chat(t, gw.URL, expiring.Reveal()); status != http.StatusOK {
		t.Fatalf("expiring key did not work before its expiry: %d", status)
	}
	stopManager()
	testenv.StepTo(clk, expiringKey.Status.ExpiresAt.Time)
	testenv.Eventually(t, time.Second, func() error { return expectStatus(t, gw.URL, expiring, http.StatusUnauthorized) })
	status, h, body = chat(t, gw.URL, expiring.Reveal())
	assert401(t, "expired", status, h, body)
	if !strings.Contains(string(body), "expired") {
		t.Errorf("expired key's owner should be told it expired: %s", body)
	}
	if k := get(t, ns, "expiring"); k.Status.Phase != gatewayv1alpha1.PhaseActive {
		t.Fatalf("phase = %s: the manager was stopped, so the gateway alone must have refused the key", k.Status.Phase)
	}
	if status, _, _ := chat(t, gw.URL, good.Reveal()); status != http.StatusOK {
		t.Errorf("good key stopped working: %d", status)
	}
}

func expectStatus(t *testing.T, url string, key keys.Key, want int) error {
	status, _, body := chat(t, url, key.Reveal())
	if status != want {
		return &statusError{status, want, string(body)}
	}
	return nil
}

type statusError struct {
	got, want int
	body      string
}

func (e *statusError) Error() string {
	return "status " + http.StatusText(e.got) + ", want " + http.StatusText(e.want) + ": " + e.body
}

// sameIDOtherSecret is a well-formed key (valid checksum) with k's key ID
// and a different secret: it passes every check before argon2.
func sameIDOtherSecret(t *testing.T, k keys.Key) keys.Key {
	t.Helper()
	for {
		other, err := keys.Generate()
		if err != nil {
			t.Fatal(err)
		}
		forged, err := keys.WithID(other, k.ID())
		if err != nil {
			t.Fatal(err)
		}
		if forged.Reveal() != k.Reveal() {
			return forged
		}
	}
}

func flip(c string) string {
	if c == "A" {
		return "B"
	}
	return "A"
}

func patch(t *testing.T, k *gatewayv1alpha1.APIKey, mutate func(*gatewayv1alpha1.APIKey)) {
	t.Helper()
	base := k.DeepCopy()
	mutate(k)
	if err := env.Client.Patch(context.Background(), k, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
}

func get(t *testing.T, ns, name string) *gatewayv1alpha1.APIKey {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	if err := env.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, k); err != nil {
		t.Fatal(err)
	}
	return k
}
