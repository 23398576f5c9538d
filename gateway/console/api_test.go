package console_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/testenv"
)

func TestAPICreateListRevoke(t *testing.T) {
	s := startStack(t, true, nil)
	alice := s.as("alice@example.com")

	before := time.Now()
	c, r := alice.create(t, map[string]any{"displayName": "Alice's laptop", "ttl": "720h"})
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("create response Cache-Control = %q, want no-store", cc)
	}
	k := c.APIKey
	if k.Status != "Active" || k.Prefix != c.Key[:12] || k.Owner != "alice@example.com" || k.DisplayName != "Alice's laptop" || k.Name != "alice-s-laptop" {
		t.Errorf("created %+v", k)
	}
	if k.ExpiresAt == nil || k.ExpiresAt.Sub(before.Add(720*time.Hour)).Abs() > time.Minute {
		t.Errorf("expiresAt %v, want about 30 days from now", k.ExpiresAt)
	}
	if status := s.chat(t, c.Key); status != http.StatusOK {
		t.Fatalf("the gateway answered the new key with %d", status)
	}

	// The APIKey is owned by alice, though the gateway created it, and
	// its one-shot reveal is spent.
	testenv.Eventually(t, 5*time.Second, func() error {
		stored := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: s.Namespace, Name: k.Name}, stored); err != nil {
			return err
		}
		if stored.Spec.Owner != "alice@example.com" || stored.Status.Reveal == nil || stored.Status.Reveal.State != gatewayv1alpha1.RevealConsumed {
			return fmt.Errorf("owner %q, reveal %+v: want alice, consumed", stored.Spec.Owner, stored.Status.Reveal)
		}
		return nil
	})

	l, lr := alice.list(t, "")
	if len(l.Items) != 1 || l.Items[0].Name != k.Name || l.Items[0].Prefix != c.Key[:12] || l.Items[0].Status != "Active" || l.Items[0].LastUsedAt != nil && l.Items[0].LastUsedAt.Before(before.Add(-time.Minute)) {
		t.Errorf("list = %+v", l.Items)
	}
	if l.Owners != nil {
		t.Errorf("a non-admin got the owners of all keys: %v", l.Owners)
	}
	assertNoKey(t, "the list response", lr.Body, c.Key)
	page := alice.page(t, "")
	assertNoKey(t, "the page", page.Body, c.Key)
	for _, want := range []string{c.Key[:12] + "…", "Alice&#39;s laptop", k.Name, `status-active`} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %q", want)
		}
	}

	rr := alice.revoke(t, k.Name)
	if rr.Status != http.StatusOK || !strings.Contains(rr.String(), `"status":"Revoked"`) {
		t.Fatalf("revoke: %d %s", rr.Status, rr.Body)
	}
	s.waitForStatus(t, c.Key, http.StatusUnauthorized)
	l, _ = alice.list(t, "")
	if len(l.Items) != 1 || l.Items[0].Status != "Revoked" {
		t.Errorf("after revoking, list = %+v", l.Items)
	}
	if page := alice.page(t, ""); strings.Contains(page.String(), `data-revoke=`) || !strings.Contains(page.String(), "Revoked") {
		t.Errorf("the page still offers Revoke for a revoked key, or does not say Revoked")
	}
	if rr := alice.revoke(t, k.Name); rr.Status != http.StatusOK {
		t.Errorf("revoking twice: %d %s", rr.Status, rr.Body)
	}
}

func TestAPICreateErrors(t *testing.T) {
	s := startStack(t, true, nil)
	alice := s.as("alice@example.com")
	c, _ := alice.create(t, map[string]any{"name": "ci"})
	if c.APIKey.Name != "ci" || c.APIKey.DisplayName != "" {
		t.Errorf("created %+v", c.APIKey)
	}
	// Other users cannot take the name either: names are per namespace.
	bob := s.as("bob@example.com")
	bob.page(t, "")
	for _, tc := range []struct {
		who      *user
		body     any
		status   int
		code     string
		mentions string
	}{
		{alice, map[string]any{"name": "ci"}, http.StatusConflict, "name_taken", `"ci" already exists`},
		{bob, map[string]any{"name": "ci"}, http.StatusConflict, "name_taken", `"ci" already exists`},
		{alice, map[string]any{"name": "My Laptop"}, http.StatusBadRequest, "invalid_name", "lowercase letters"},
		{alice, map[string]any{"ttl": "1h", "expiresAt": time.Now().Add(time.Hour)}, http.StatusBadRequest, "invalid_expiry", "not both"},
		{alice, map[string]any{"expiresAt": time.Now().Add(-time.Hour)}, http.StatusBadRequest, "invalid_expiry", "future"},
		{alice, map[string]any{"ttl": "a month"}, http.StatusBadRequest, "invalid_expiry", "720h"},
		{alice, map[string]any{"expires": "2030-01-01"}, http.StatusBadRequest, "invalid_json", `unknown field "expires"`},
		{alice, map[string]any{"displayName": strings.Repeat("x", 129)}, http.StatusBadRequest, "invalid_display_name", "at most 128"},
	} {
		r := tc.who.do(t, http.MethodPost, "/api/v1/apikeys", tc.body)
		if r.Status != tc.status || r.errorCode() != tc.code || !strings.Contains(r.errorMessage(), tc.mentions) {
			t.Errorf("%v: %d %s, want %d %s mentioning %q", tc.body, r.Status, r.Body, tc.status, tc.code, tc.mentions)
		}
	}
	if r := alice.revoke(t, "no-such-key"); r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("revoking a missing key: %d %s", r.Status, r.Body)
	}
	l, _ := alice.list(t, "")
	if !slices.Equal(names(l.Items), []string{"ci"}) {
		t.Errorf("refused creates left keys behind: %v", names(l.Items))
	}
}

// Without a controller the console gives up after its timeout, says so in
// words a user can act on, and revokes the half-made key so it can never
// work without anyone holding it.
func TestAPICreateTimesOutWithoutController(t *testing.T) {
	s := startStack(t, false, func(o *server.Options) { o.Console.CreateTimeout = 2 * time.Second })
	alice := s.as("alice@example.com")
	alice.page(t, "")
	start := time.Now()
	r := alice.do(t, http.MethodPost, "/api/v1/apikeys", map[string]any{"name": "orphan"})
	if r.Status != http.StatusGatewayTimeout || r.errorCode() != "controller_timeout" {
		t.Fatalf("create without a controller: %d %s", r.Status, r.Body)
	}
	if took := time.Since(start); took > 6*time.Second {
		t.Errorf("the create took %v with a 2s timeout", took)
	}
	want := "The key could not be created: the controller did not answer within 2 seconds. Try again; if it keeps happening, ask your administrator to check the codevector manager."
	if r.errorMessage() != want {
		t.Errorf("message %q, want %q", r.errorMessage(), want)
	}
	orphan := &gatewayv1alpha1.APIKey{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: s.Namespace, Name: "orphan"}, orphan); err != nil {
		t.Fatal(err)
	}
	if !orphan.Spec.Revoked {
		t.Error("the abandoned key was not revoked")
	}
}

func TestAPIUsersSeeAndRevokeOnlyTheirOwnKeys(t *testing.T) {
	s := startStack(t, true, nil)
	alice, bob := s.as("alice@example.com"), s.as("bob@example.com", "developers")
	a, _ := alice.create(t, map[string]any{"displayName": "alice-key"})
	b, _ := bob.create(t, map[string]any{"displayName": "bob-key"})

	for _, tc := range []struct {
		u          *user
		mine, not  created
		otherOwner string
	}{{alice, a, b, "bob@example.com"}, {bob, b, a, "alice@example.com"}} {
		l, lr := tc.u.list(t, "")
		if !slices.Equal(names(l.Items), []string{tc.mine.APIKey.Name}) {
			t.Errorf("%s sees %v, want only %s", tc.u.email, names(l.Items), tc.mine.APIKey.Name)
		}
		// Asking for another owner's keys does not widen the view.
		if l, _ := tc.u.list(t, "?owner="+tc.otherOwner); len(l.Items) != 0 {
			t.Errorf("%s sees %v with ?owner=%s", tc.u.email, names(l.Items), tc.otherOwner)
		}
		page := tc.u.page(t, "?owner="+tc.otherOwner)
		if strings.Contains(page.String(), tc.not.APIKey.Name) || strings.Contains(lr.String(), tc.not.APIKey.Name) {
			t.Errorf("%s's page or list mentions %s", tc.u.email, tc.not.APIKey.Name)
		}
		assertNoKey(t, tc.u.email+"'s page", page.Body, a.Key, b.Key)
		assertNoKey(t, tc.u.email+"'s list", lr.Body, a.Key, b.Key)
	}

	// bob cannot revoke alice's key, and cannot even tell it exists.
	r := bob.revoke(t, a.APIKey.Name)
	if r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("bob revoking alice's key: %d %s", r.Status, r.Body)
	}
	if status := s.chat(t, a.Key); status != http.StatusOK {
		t.Errorf("alice's key stopped working after bob's attempt: %d", status)
	}
	// A group name that merely resembles the admin group grants nothing.
	mallory := s.as("mallory@example.com", "codevector:admin", "admins")
	if l, _ := mallory.list(t, ""); len(l.Items) != 0 {
		t.Errorf("mallory sees %v", names(l.Items))
	}
}

func TestAPIAdminSeesEveryonesMetadataButNoKey(t *testing.T) {
	s := startStack(t, true, nil)
	alice, bob := s.as("alice@example.com"), s.as("bob@example.com")
	carol := s.as("carol@example.com", "developers", gatewayv1alpha1.DefaultAdminGroup)
	a, _ := alice.create(t, map[string]any{"displayName": "alice-key"})
	b, _ := bob.create(t, map[string]any{"displayName": "bob-key"})
	own, _ := carol.create(t, map[string]any{"displayName": "carol-key"})
	if own.APIKey.Owner != "carol@example.com" {
		t.Errorf("an admin's own key is owned by %q", own.APIKey.Owner)
	}

	l, lr := carol.list(t, "")
	if got := names(l.Items); len(got) != 3 || !slices.Contains(got, a.APIKey.Name) || !slices.Contains(got, b.APIKey.Name) || !slices.Contains(got, own.APIKey.Name) {
		t.Errorf("admin sees %v, want all three keys", got)
	}
	// Newest first (creation times have one-second resolution, so keys
	// made within the same second may come in any order).
	if !slices.IsSortedFunc(l.Items, func(x, y item) int { return y.CreatedAt.Compare(x.CreatedAt) }) {
		t.Errorf("admin list is not newest first: %+v", l.Items)
	}
	if !slices.Equal(l.Owners, []string{"alice@example.com", "bob@example.com", "carol@example.com"}) {
		t.Errorf("owners = %v", l.Owners)
	}
	for _, i := range l.Items {
		if i.Prefix == "" || i.Owner == "" {
			t.Errorf("admin view of %s lacks prefix or owner: %+v", i.Name, i)
		}
	}
	assertNoKey(t, "the admin's list", lr.Body, a.Key, b.Key, own.Key)

	if l, _ := carol.list(t, "?owner=alice@example.com"); !slices.Equal(names(l.Items), []string{a.APIKey.Name}) {
		t.Errorf("admin filtered by alice sees %v", names(l.Items))
	}
	page := carol.page(t, "")
	assertNoKey(t, "the admin's page", page.Body, a.Key, b.Key, own.Key)
	for _, want := range []string{`<th scope="col" class="col-owner">Owner</th>`, "alice@example.com", "bob@example.com", `<select id="owner" name="owner">`, a.Key[:12], b.Key[:12]} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the admin page lacks %q", want)
		}
	}
	if filtered := carol.page(t, "?owner=bob@example.com"); strings.Contains(filtered.String(), a.APIKey.Name) || !strings.Contains(filtered.String(), b.APIKey.Name) {
		t.Error("the admin page's owner filter does not filter")
	}

	// Admins may revoke anyone's key.
	if r := carol.revoke(t, b.APIKey.Name); r.Status != http.StatusOK {
		t.Fatalf("admin revoking bob's key: %d %s", r.Status, r.Body)
	}
	s.waitForStatus(t, b.Key, http.StatusUnauthorized)
	if l, _ := bob.list(t, ""); len(l.Items) != 1 || l.Items[0].Status != "Revoked" {
		t.Errorf("bob's list after the admin revoked his key: %+v", l.Items)
	}
}

// Keys made outside the console, with kubectl in a team namespace, are
// listed for their owner with their namespace, and the console revokes
// them as it does its own (?namespace=), by the admission policy's rule:
// to anyone else a key is not found.
func TestAPIListsKeysFromOtherNamespaces(t *testing.T) {
	// The default: the gateway watches APIKeys in every namespace. Users
	// of this test only keep other tests' keys out of the lists.
	s := startStack(t, true, func(o *server.Options) { o.Namespaces = nil })
	team := env.Namespace(t)
	alice, bob := s.as("alice@"+s.Namespace+".example"), s.as("bob@"+s.Namespace+".example")
	carol := s.as("carol@"+s.Namespace+".example", gatewayv1alpha1.DefaultAdminGroup)

	own, _ := alice.create(t, map[string]any{"name": "laptop"})
	// The same name in the team namespace is another key.
	kubectlKey(t, team, "laptop", alice.email, "")
	kubectlKey(t, team, "ci", alice.email, "CI")
	kubectlKey(t, team, "deploy", bob.email, "")

	key := func(i item) string { return i.Namespace + "/" + i.Name }
	keys := func(items []item) []string {
		var out []string
		for _, i := range items {
			out = append(out, key(i))
		}
		slices.Sort(out)
		return out
	}
	wantAlice := []string{s.Namespace + "/laptop", team + "/ci", team + "/laptop"}
	slices.Sort(wantAlice)
	var l listed
	testenv.Eventually(t, 5*time.Second, func() error {
		l, _ = alice.list(t, "")
		if got := keys(l.Items); !slices.Equal(got, wantAlice) {
			return fmt.Errorf("alice sees %v, want %v", got, wantAlice)
		}
		return nil
	})
	if !slices.IsSortedFunc(l.Items, func(x, y item) int { return y.CreatedAt.Compare(x.CreatedAt) }) {
		t.Errorf("alice's list is not newest first: %+v", l.Items)
	}
	for _, i := range l.Items {
		if i.Owner != alice.email || i.Status != "Active" || i.Prefix == "" {
			t.Errorf("alice's %s: %+v", key(i), i)
		}
	}
	if l, _ := bob.list(t, ""); !slices.Equal(keys(l.Items), []string{team + "/deploy"}) {
		t.Errorf("bob sees %v, want only his kubectl key", keys(l.Items))
	}
	if l, _ := carol.list(t, "?owner="+alice.email); !slices.Equal(keys(l.Items), wantAlice) {
		t.Errorf("the admin filtered by alice sees %v, want %v", keys(l.Items), wantAlice)
	}
	if l, _ := carol.list(t, ""); !slices.Contains(l.Owners, alice.email) || !slices.Contains(l.Owners, bob.email) {
		t.Errorf("the admin's owner filter offers %v, without alice or bob", l.Owners)
	}

	// The page tags the kubectl keys with their namespace; every key has a
	// Revoke item and a Rotate item, wherever it was made.
	page := alice.page(t, "").String()
	for _, want := range []string{
		`<tr data-namespace="` + team + `" data-name="ci"`,
		`<span class="sr-only">namespace </span>` + team + `</span>`,
		`data-rotate="ci" data-namespace="` + team + `"`,
		`data-rotate="laptop" data-namespace="` + team + `"`,
		`data-revoke="laptop" data-namespace="` + s.Namespace + `"`,
		`data-revoke="ci" data-namespace="` + team + `"`,
		`data-rotate="laptop" data-namespace="` + s.Namespace + `"`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("alice's page lacks %s", want)
		}
	}
	if n := strings.Count(page, "data-revoke="); n != 3 {
		t.Errorf("alice's page has %d Revoke items, want 3", n)
	}
	if n := strings.Count(page, "data-rotate="); n != 3 {
		t.Errorf("alice's page has %d Rotate items, want 3", n)
	}
	if n := strings.Count(page, `class="ns-tag"`); n != 2 {
		t.Errorf("alice's page has %d namespace tags, want 2 (the kubectl keys)", n)
	}

	revokeIn := func(u *user, namespace, name string) response {
		t.Helper()
		return u.do(t, http.MethodPost, "/api/v1/apikeys/"+name+"/revoke?namespace="+namespace, map[string]any{})
	}
	// "ci" is not in the console's namespace: without ?namespace= it is
	// not found; bob may not see it there either.
	if r := alice.revoke(t, "ci"); r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("alice revoking ci in the console's namespace: %d %s", r.Status, r.Body)
	}
	bob.page(t, "")
	if r := revokeIn(bob, team, "ci"); r.Status != http.StatusNotFound || r.errorCode() != "not_found" {
		t.Errorf("bob revoking alice's %s/ci: %d %s", team, r.Status, r.Body)
	}
	// Rotating it works as for a console key: the new key is revealed in
	// the system namespace, where the gateway may read; bob may not.
	if r := bob.do(t, http.MethodPost, "/api/v1/apikeys/ci/rotate?namespace="+team, map[string]any{}); r.Status != http.StatusNotFound {
		t.Errorf("bob rotating alice's %s/ci: %d %s", team, r.Status, r.Body)
	}
	r := alice.do(t, http.MethodPost, "/api/v1/apikeys/ci/rotate?namespace="+team, map[string]any{})
	var rotated struct {
		Key    string `json:"key"`
		APIKey item   `json:"apiKey"`
	}
	if err := json.Unmarshal(r.Body, &rotated); err != nil || r.Status != http.StatusOK || !keyFormat.MatchString(rotated.Key) || key(rotated.APIKey) != team+"/ci" {
		// Not the body: it may hold the key.
		t.Fatalf("alice rotating %s/ci: %d %s, apiKey %s", team, r.Status, r.errorCode(), key(rotated.APIKey))
	}
	handedOut.Store(rotated.Key, true)
	// Revoking "laptop" revokes the console's laptop only.
	if r := alice.revoke(t, "laptop"); r.Status != http.StatusOK || !strings.Contains(r.String(), `"namespace":"`+s.Namespace+`"`) {
		t.Fatalf("alice revoking her console key: %d %s", r.Status, r.Body)
	}
	s.waitForStatus(t, own.Key, http.StatusUnauthorized)
	stored := func(name string) *gatewayv1alpha1.APIKey {
		k := &gatewayv1alpha1.APIKey{}
		if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: team, Name: name}, k); err != nil {
			t.Fatal(err)
		}
		return k
	}
	for _, name := range []string{"ci", "laptop"} {
		if k := stored(name); k.Spec.Revoked || k.Status.Phase != gatewayv1alpha1.PhaseActive {
			t.Errorf("%s/%s: revoked %v, phase %s; want it untouched and Active", team, name, k.Spec.Revoked, k.Status.Phase)
		}
	}
	// Alice revokes her kubectl key "ci" in the console.
	if r := revokeIn(alice, team, "ci"); r.Status != http.StatusOK || !strings.Contains(r.String(), `"namespace":"`+team+`"`) {
		t.Fatalf("alice revoking %s/ci: %d %s", team, r.Status, r.Body)
	}
	if k := stored("ci"); !k.Spec.Revoked {
		t.Errorf("%s/ci is not revoked on the API server", team)
	}
	l, _ = alice.list(t, "")
	for _, i := range l.Items {
		if want := map[bool]string{true: "Revoked", false: "Active"}[key(i) != team+"/laptop"]; i.Status != want {
			t.Errorf("after the revocations alice's %s is %s, want %s", key(i), i.Status, want)
		}
	}
}

// A key an admin applied for alice exists only as a request until she
// asks for it (it is sealed to a key pair on her machine): the console
// lists it as Pending and tells her the command that receives it.
func TestKeyAwaitingItsOwnerSaysHowToReceiveIt(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) { o.Namespaces = nil })
	team := env.Namespace(t)
	alice := s.as("alice@" + s.Namespace + ".example")
	admin, err := clusterAdmin()
	if err != nil {
		t.Fatal(err)
	}
	k := &gatewayv1alpha1.APIKey{}
	k.Namespace, k.Name, k.Spec.Owner = team, "for-alice", alice.email
	if err := admin.Create(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	env.WaitForPhase(t, team, k.Name, gatewayv1alpha1.PhasePending, 10*time.Second)

	var l listed
	testenv.Eventually(t, 5*time.Second, func() error {
		l, _ = alice.list(t, "")
		if len(l.Items) != 1 || !l.Items[0].AwaitingReveal || l.Items[0].Status != "Pending" {
			return fmt.Errorf("alice's list: %+v, want the key Pending and awaiting its reveal", l.Items)
		}
		return nil
	})
	page := alice.page(t, "")
	want := "receive it with <code>kubectl apikey reveal for-alice -n " + team + "</code>"
	if !strings.Contains(string(page.Body), want) {
		t.Errorf("alice's page does not say %q", want)
	}
}
