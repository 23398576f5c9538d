package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
)

// rotated mirrors the rotate response.
type rotated struct {
	APIKey struct {
		item
		Previous *struct {
			Prefix     string     `json:"prefix"`
			ExpiresAt  time.Time  `json:"expiresAt"`
			LastUsedAt *time.Time `json:"lastUsedAt"`
		} `json:"previous"`
	} `json:"apiKey"`
	Key               string     `json:"key"`
	PreviousPrefix    string     `json:"previousPrefix"`
	PreviousExpiresAt *time.Time `json:"previousExpiresAt"`
}

func (u *user) rotate(t *testing.T, name string, body any, mutate ...func(*http.Request)) response {
	t.Helper()
	if u.token == "" {
		u.page(t, "")
	}
	return u.do(t, http.MethodPost, "/api/v1/apikeys/"+name+"/rotate", body, mutate...)
}

func TestAPIRotate(t *testing.T) {
	s := startStack(t, true, nil)
	alice, bob := s.as("alice@example.com"), s.as("bob@example.com")
	carol := s.as("carol@example.com", "developers", gatewayv1alpha1.DefaultAdminGroup)
	c, _ := alice.create(t, map[string]any{"displayName": "laptop"})
	name := c.APIKey.Name
	carol.page(t, "")
	bob.page(t, "")

	// The CSRF guard comes first.
	for what, mutate := range map[string]func(*http.Request){
		"no token":          func(r *http.Request) { r.Header.Del("X-CSRF-Token") },
		"another's token":   func(r *http.Request) { r.Header.Set("X-CSRF-Token", bob.token) },
		"cross-site origin": func(r *http.Request) { r.Header.Set("Sec-Fetch-Site", "cross-site") },
	} {
		if r := alice.rotate(t, name, map[string]any{}, mutate); r.Status != http.StatusForbidden {
			t.Errorf("rotate with %s: %d %s", what, r.Status, r.Body)
		}
	}
	// Only the owner receives the key: an admin is refused, another user
	// does not learn the key exists.
	if r := carol.rotate(t, name, map[string]any{}); r.Status != http.StatusForbidden || r.errorCode() != "not_owner" {
		t.Errorf("admin rotating alice's key: %d %s", r.Status, r.Body)
	}
	if r := bob.rotate(t, name, map[string]any{}); r.Status != http.StatusNotFound {
		t.Errorf("bob rotating alice's key: %d %s", r.Status, r.Body)
	}
	if r := alice.rotate(t, name, map[string]any{"gracePeriod": "-1h"}); r.Status != http.StatusBadRequest || r.errorCode() != "invalid_grace_period" {
		t.Errorf("negative grace: %d %s", r.Status, r.Body)
	}
	if r := alice.rotate(t, name, map[string]any{"grace": "1h"}); r.Status != http.StatusBadRequest {
		t.Errorf("unknown field: %d %s", r.Status, r.Body)
	}

	before := time.Now()
	r := alice.rotate(t, name, map[string]any{"gracePeriod": "1h"})
	if r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("rotate response Cache-Control = %q", cc)
	}
	var got rotated
	if err := json.Unmarshal(r.Body, &got); err != nil {
		t.Fatal(err)
	}
	handedOut.Store(got.Key, true)
	if !keyFormat.MatchString(got.Key) || got.Key == c.Key || got.Key[:12] == c.Key[:12] {
		t.Fatalf("rotate returned %q..., old key %q...", got.Key[:min(12, len(got.Key))], c.Key[:12])
	}
	if got.APIKey.Name != name || got.APIKey.Prefix != got.Key[:12] || got.APIKey.Status != "Active" {
		t.Errorf("rotated item %+v", got.APIKey.item)
	}
	if got.PreviousPrefix != c.Key[:12] || got.PreviousExpiresAt == nil || got.PreviousExpiresAt.Sub(before.Add(time.Hour)).Abs() > time.Minute {
		t.Errorf("previous %q until %v, want %q about an hour from now", got.PreviousPrefix, got.PreviousExpiresAt, c.Key[:12])
	}
	if p := got.APIKey.Previous; p == nil || p.Prefix != c.Key[:12] {
		t.Errorf("the item does not show the old key: %+v", p)
	}
	stored := &gatewayv1alpha1.APIKey{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: s.Namespace, Name: name}, stored); err != nil {
		t.Fatal(err)
	}
	if p := stored.Status.Previous; p == nil || p.Prefix != c.Key[:12] || stored.Status.Prefix != got.Key[:12] {
		t.Errorf("stored status: prefix %q, previous %+v", stored.Status.Prefix, stored.Status.Previous)
	}
	// Both keys work during the grace period.
	if st := s.chat(t, got.Key); st != http.StatusOK {
		t.Errorf("the new key: %d", st)
	}
	if st := s.chat(t, c.Key); st != http.StatusOK {
		t.Errorf("the old key during its grace period: %d", st)
	}
	page := alice.page(t, "")
	assertNoKey(t, "the page", page.Body, got.Key, c.Key)
	for _, want := range []string{"still works until", c.Key[:12] + "…", `data-rotate="` + name + `"`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if p := carol.page(t, ""); strings.Contains(p.String(), `data-rotate="`+name+`"`) {
		t.Errorf("an admin is offered Rotate for alice's key")
	}

	// "0s": the old key stops at once.
	r = alice.rotate(t, name, map[string]any{"gracePeriod": "0s"})
	if r.Status != http.StatusOK {
		t.Fatalf("rotate 0s: %d %s", r.Status, r.Body)
	}
	var again rotated
	if err := json.Unmarshal(r.Body, &again); err != nil {
		t.Fatal(err)
	}
	handedOut.Store(again.Key, true)
	s.waitForStatus(t, got.Key, http.StatusUnauthorized)
	if st := s.chat(t, again.Key); st != http.StatusOK {
		t.Errorf("the newest key: %d", st)
	}

	// Only an active key can be rotated.
	if rr := alice.revoke(t, name); rr.Status != http.StatusOK {
		t.Fatalf("revoke: %d %s", rr.Status, rr.Body)
	}
	if r := alice.rotate(t, name, nil, func(r *http.Request) {}); r.Status == http.StatusOK {
		t.Errorf("rotating without a body or token succeeded")
	}
	if r := alice.rotate(t, name, map[string]any{}); r.Status != http.StatusConflict || r.errorCode() != "not_active" {
		t.Errorf("rotating a revoked key: %d %s", r.Status, r.Body)
	}
}

func TestPageShowsExpirySoonBadge(t *testing.T) {
	s := startStack(t, true, nil)
	alice := s.as("alice@example.com")
	soon, _ := alice.create(t, map[string]any{"displayName": "soon", "ttl": "73h"})
	later, _ := alice.create(t, map[string]any{"displayName": "later", "ttl": "720h"})
	testenv.Eventually(t, 5*time.Second, func() error {
		page := alice.page(t, "").String()
		if n := strings.Count(page, "Expires in 3 days"); n != 1 {
			return fmt.Errorf("%d badges \"Expires in 3 days\" (want 1, for %s and not %s)", n, soon.APIKey.Name, later.APIKey.Name)
		}
		return nil
	})
}
