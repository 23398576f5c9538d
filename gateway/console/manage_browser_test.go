package console_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/gateway/web/webtest"
	"github.com/codevector/codevector/internal/testenv"
)

// storedOrNil is the APIKey as the API server holds it, nil when gone.
func storedOrNil(t *testing.T, namespace, name string) *gatewayv1alpha1.APIKey {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: namespace, Name: name}, k)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("reading APIKey %s/%s: %v", namespace, name, err)
	}
	return k
}

// rowSel is the table row of the key namespace/name.
func rowSel(namespace, name string) string {
	return fmt.Sprintf(`#keys tr[data-namespace=%q][data-name=%q]`, namespace, name)
}

// menuItems are the labels of the row's menu items, after opening it.
func openMenu(t *testing.T, ctx context.Context, row string) []string {
	t.Helper()
	webtest.Do(t, ctx, "opening the row menu", chromedp.Click(chromedp.CSS(row+` [aria-haspopup="menu"]`)))
	webtest.WaitJS(t, ctx, "the menu is open", fmt.Sprintf(`document.querySelector(%q).hidden === false`, row+` [role="menu"]`))
	return webtest.Eval[[]string](t, ctx, fmt.Sprintf(`Array.from(document.querySelectorAll(%q), e => e.textContent.trim())`, row+` [role="menuitem"]`))
}

// confirmIn clicks the row menu's item sel, then the dialog's button confirm.
func confirmIn(t *testing.T, ctx context.Context, row, sel, confirm string) {
	t.Helper()
	webtest.Do(t, ctx, "choosing "+sel+" and confirming",
		chromedp.Click(chromedp.CSS(row+" "+sel)),
		chromedp.WaitVisible(chromedp.ID(confirm)),
		chromedp.Click(chromedp.ID(confirm)),
	)
}

// A key the dev user made with kubectl in a team namespace is theirs in
// the console too: revoked from its row menu (and then Revoked on the API
// server), then deleted (and then gone from the table and the API server).
// Its menu offers Rotate too (rotate_browser_test.go rotates one).
func TestBrowserManagesKubectlKeys(t *testing.T) {
	team := env.Namespace(t)
	_, ctx, watch := devStack(t, team)
	defer watch.Check(t)
	kubectlKey(t, team, "ci", console.DevUser, "CI")
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	webtest.Eval[bool](t, ctx, `window.stillTheSamePage = true`)
	row := rowSel(team, "ci")

	if items := openMenu(t, ctx, row); !slices.Equal(items, []string{"Rotate", "Revoke"}) {
		t.Errorf("the kubectl key's menu offers %q, want Rotate and Revoke", items)
	}
	webtest.Screenshot(t, ctx, "console-kubectl-key-manage-menu")
	confirmIn(t, ctx, row, "[data-revoke]", "revoke-confirm")
	webtest.WaitJS(t, ctx, "the row shows Revoked", fmt.Sprintf(`(document.querySelector(%q) || {dataset: {}}).dataset.status === "Revoked"`, row))
	if k := storedOrNil(t, team, "ci"); k == nil || !k.Spec.Revoked {
		t.Fatalf("after Revoke in the console the API server holds %+v, want %s/ci revoked", k, team)
	}

	if items := openMenu(t, ctx, row); !slices.Equal(items, []string{"Delete"}) {
		t.Errorf("the revoked key's menu offers %q, want only Delete", items)
	}
	webtest.Do(t, ctx, "choosing Delete",
		chromedp.Click(chromedp.CSS(row+" [data-delete]")),
		chromedp.WaitVisible(chromedp.ID("delete-confirm")),
	)
	if title := webtest.Eval[string](t, ctx, `document.getElementById("delete-title").textContent`); title != "Delete CI?" {
		t.Errorf("confirmation title %q", title)
	}
	webtest.Screenshot(t, ctx, "console-delete-confirm")
	webtest.Do(t, ctx, "confirming", chromedp.Click(chromedp.ID("delete-confirm")))
	webtest.WaitJS(t, ctx, "the row is gone", fmt.Sprintf(`document.querySelector(%q) === null`, row))
	if got := webtest.Eval[string](t, ctx, `document.getElementById("toast").textContent`); !strings.Contains(got, "CI was deleted") {
		t.Errorf("toast %q, want it to say CI was deleted", got)
	}
	// The manager's finalizer removes it a moment later.
	testenv.Eventually(t, 15*time.Second, func() error {
		if k := storedOrNil(t, team, "ci"); k != nil {
			return fmt.Errorf("APIKey %s/ci is still there (deleting: %v)", team, k.DeletionTimestamp != nil)
		}
		return nil
	})
	if !webtest.Eval[bool](t, ctx, `window.stillTheSamePage === true`) {
		t.Error("the page reloaded")
	}

	// Revoked keys pile up no more: "Delete revoked and expired keys"
	// deletes every one the table lists, and nothing that works.
	if webtest.Eval[bool](t, ctx, `document.getElementById("clear-bar").hidden === false`) {
		t.Error("the clear button shows with nothing to clear")
	}
	for _, name := range []string{"old-1", "old-2"} {
		k := kubectlKey(t, team, name, console.DevUser, "")
		if err := env.Client.Patch(context.Background(), k, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`))); err != nil {
			t.Fatal(err)
		}
	}
	kubectlKey(t, team, "live", console.DevUser, "")
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	webtest.WaitJS(t, ctx, "the clear button shows", `document.getElementById("clear-bar").hidden === false`)
	webtest.Do(t, ctx, "clearing revoked and expired keys",
		chromedp.Click(chromedp.ID("clear-dead")),
		chromedp.WaitVisible(chromedp.ID("delete-confirm")),
	)
	if title := webtest.Eval[string](t, ctx, `document.getElementById("delete-title").textContent`); title != "Delete 2 keys that no longer work?" {
		t.Errorf("confirmation title %q", title)
	}
	webtest.Do(t, ctx, "confirming", chromedp.Click(chromedp.ID("delete-confirm")))
	webtest.WaitJS(t, ctx, "only the working key is left", fmt.Sprintf(`document.querySelectorAll("#keys tbody tr").length === 1 && document.querySelector(%q) !== null`, rowSel(team, "live")))
	webtest.WaitJS(t, ctx, "the clear button is gone", `document.getElementById("clear-bar").hidden === true`)
	for _, name := range []string{"old-1", "old-2"} {
		if k := storedOrNil(t, team, name); k != nil && k.DeletionTimestamp == nil {
			t.Errorf("the API server holds %s/%s, not being deleted", team, name)
		}
	}
	if k := storedOrNil(t, team, "live"); k == nil || k.DeletionTimestamp != nil || k.Spec.Revoked {
		t.Errorf("the working key %s/live was touched: %+v", team, k)
	}
}

// Console keys are named after what the user types, made unique, and the
// table shows each key's name and namespace. A revoked key's row shows no
// expiry: it will never expire, it is already refused.
func TestBrowserReadableNamesAndRevokedExpiry(t *testing.T) {
	s, ctx, watch := devStack(t)
	defer watch.Check(t)
	for range 2 {
		createInPage(t, ctx, "My Laptop", "30")
		clickDone(t, ctx)
	}
	for _, name := range []string{"my-laptop", "my-laptop-2"} {
		k := storedOrNil(t, s.Namespace, name)
		if k == nil || k.Spec.DisplayName != "My Laptop" {
			t.Fatalf("the API server holds %+v as %s/%s, want the key named My Laptop", k, s.Namespace, name)
		}
		webtest.WaitJS(t, ctx, "the row of "+name, fmt.Sprintf(`document.querySelector(%q) !== null`, rowSel(s.Namespace, name)))
		if got := webtest.Eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent`, rowSel(s.Namespace, name)+" .key-ref")); got != name+" in "+s.Namespace {
			t.Errorf("the row shows %q, want %q", got, name+" in "+s.Namespace)
		}
	}
	row := rowSel(s.Namespace, "my-laptop")
	expires := func() string {
		return webtest.Eval[string](t, ctx, fmt.Sprintf(`document.querySelector(%q).textContent.trim()`, row+` td[data-label="Expires"]`))
	}
	if got := expires(); got == "-" {
		t.Fatal("the active key shows no expiry")
	}
	openMenu(t, ctx, row)
	confirmIn(t, ctx, row, "[data-revoke]", "revoke-confirm")
	webtest.WaitJS(t, ctx, "the row shows Revoked", fmt.Sprintf(`document.querySelector(%q).dataset.status === "Revoked"`, row))
	if got := expires(); got != "-" {
		t.Errorf("the revoked key's Expires cell shows %q, want -", got)
	}
	webtest.Screenshot(t, ctx, "console-readable-names")
}

// An admin sees everyone's keys, searches them by owner, name, prefix and
// status, revokes and deletes another user's kubectl key, and is not
// offered to rotate it (only its owner receives a rotated key).
func TestBrowserAdminSearchesAndManagesEveryonesKeys(t *testing.T) {
	team := env.Namespace(t)
	s := startStack(t, true, func(o *server.Options) { o.Namespaces = append(o.Namespaces, team) })
	const alice, bob = "alice@example.com", "bob@example.com"
	kubectlKey(t, team, "alice-ci", alice, "")
	bobs := kubectlKey(t, team, "bob-deploy", bob, "deploy bot")
	kubectlKey(t, s.Namespace, "bob-old", bob, "")
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	webtest.Do(t, ctx, "opening the console as an admin",
		signedInAs("carol@example.com", gatewayv1alpha1.DefaultAdminGroup),
		chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("key-search")))

	// Revoke bob's old key, as the admin.
	old := rowSel(s.Namespace, "bob-old")
	if items := openMenu(t, ctx, old); slices.Contains(items, "Rotate") || !slices.Contains(items, "Revoke") {
		t.Errorf("the admin's menu for bob's key offers %q: want Revoke, and no Rotate", items)
	}
	confirmIn(t, ctx, old, "[data-revoke]", "revoke-confirm")
	webtest.WaitJS(t, ctx, "bob's old key shows Revoked", fmt.Sprintf(`document.querySelector(%q).dataset.status === "Revoked"`, old))
	if k := storedOrNil(t, s.Namespace, "bob-old"); k == nil || !k.Spec.Revoked {
		t.Fatal("the API server does not hold bob's old key revoked")
	}

	visible := func() []string {
		t.Helper()
		rows := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys tbody tr:not([hidden])"), tr => tr.dataset.name)`)
		slices.Sort(rows)
		return rows
	}
	search := func(text string, want ...string) {
		t.Helper()
		webtest.Eval[bool](t, ctx, `(document.getElementById("key-search").value = "") === ""`)
		webtest.Do(t, ctx, "typing "+text+" into Search", chromedp.SendKeys(chromedp.ID("key-search"), text))
		slices.Sort(want)
		if got := visible(); !slices.Equal(got, want) {
			t.Errorf("searching %q shows %q, want %q", text, got, want)
		}
	}
	search("bob", "bob-deploy", "bob-old")
	search("alice", "alice-ci")
	search("revoked", "bob-old")
	search("deploy bot", "bob-deploy")
	search(bobs.Status.Prefix, "bob-deploy")
	search("bob active", "bob-deploy")
	if got := webtest.Eval[string](t, ctx, `document.getElementById("key-search-count").textContent`); got != "1 of 3 keys match." {
		t.Errorf("the count says %q", got)
	}
	webtest.Screenshot(t, ctx, "console-admin-search")

	// The search holds while the table is rendered anew (after a delete).
	search("bob", "bob-deploy", "bob-old")
	openMenu(t, ctx, old)
	confirmIn(t, ctx, old, "[data-delete]", "delete-confirm")
	webtest.WaitJS(t, ctx, "bob's old key is gone", fmt.Sprintf(`document.querySelector(%q) === null`, old))
	if got := visible(); !slices.Equal(got, []string{"bob-deploy"}) {
		t.Errorf("after the delete the search shows %q, want bob-deploy", got)
	}
	if k := storedOrNil(t, s.Namespace, "bob-old"); k != nil && k.DeletionTimestamp == nil {
		t.Error("the API server holds bob's old key, not being deleted")
	}
}
