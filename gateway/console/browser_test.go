package console_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/gateway/web/webtest"
)

// Colours of the status dots in the light theme (site.css).
const (
	green = "rgb(22, 163, 74)"
	gray  = "rgb(156, 163, 175)"
)

// devStack is the whole system with the console in dev mode (the browser
// is the dev user), and a browser tab on its console. The gateway watches
// the console's namespace and teamNamespaces.
func devStack(t *testing.T, teamNamespaces ...string) (*stack, context.Context, *webtest.Watch) {
	t.Helper()
	s := startStack(t, true, func(o *server.Options) {
		o.Console.Auth = console.AuthDev
		o.Namespaces = append(o.Namespaces, teamNamespaces...)
	})
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	webtest.Do(t, ctx, "opening the console", chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	return s, ctx, watch
}

// createInPage creates a key through the dialog and returns the key the
// dialog shows, leaving the dialog open on "Save your key".
func createInPage(t *testing.T, ctx context.Context, name, expiry string) string {
	t.Helper()
	webtest.Do(t, ctx, "creating a key in the page",
		chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
		chromedp.WaitVisible(chromedp.ID("create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), name),
		chromedp.SetValue(chromedp.ID("create-expiry"), expiry),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("reveal-key")),
	)
	key := webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`)
	if !keyFormat.MatchString(key) {
		t.Fatalf("the dialog shows %q..., not a key of the documented format", key[:min(len(key), 12)])
	}
	handedOut.Store(key, true)
	return key
}

func clickDone(t *testing.T, ctx context.Context) {
	t.Helper()
	webtest.Do(t, ctx, "closing the dialog", chromedp.Click(chromedp.ID("reveal-done")))
	webtest.WaitJS(t, ctx, "the dialog is closed", `!document.getElementById("create-dialog").open`)
}

func dotColour(t *testing.T, ctx context.Context, row string) string {
	t.Helper()
	return webtest.Eval[string](t, ctx, fmt.Sprintf(`getComputedStyle(document.querySelector(%q)).backgroundColor`, row+" .dot"))
}

func TestBrowserCreateUseAndRevokeKey(t *testing.T) {
	s, ctx, watch := devStack(t)
	defer watch.Check(t)
	if got := webtest.Eval[string](t, ctx, `document.querySelector(".empty h2").textContent`); got != "No API keys yet" {
		t.Errorf("empty state says %q", got)
	}
	webtest.Screenshot(t, ctx, "console-empty")
	// Anything that reloads the page would drop this marker.
	webtest.Eval[bool](t, ctx, `window.stillTheSamePage = true`)

	key := createInPage(t, ctx, "laptop", "30")
	curl := webtest.Eval[string](t, ctx, `document.getElementById("reveal-curl").textContent`)
	if !strings.Contains(curl, s.URL+"/gateway/openai/v1/chat/completions") || !strings.Contains(curl, "Bearer "+key) {
		t.Errorf("the dialog's curl example does not use this gateway and the key:\n%s", curl)
	}
	if warning := webtest.Eval[string](t, ctx, `document.querySelector("#reveal-step .alert-warning").textContent`); !strings.Contains(warning, "only time the key is shown") {
		t.Errorf("warning %q", warning)
	}
	webtest.WaitJS(t, ctx, "the new row is in the table behind the dialog", `document.querySelector('#keys tr[data-status="Active"]') !== null`)
	webtest.Screenshot(t, ctx, "console-key-created")

	clickDone(t, ctx)
	html := webtest.Eval[string](t, ctx, `document.documentElement.outerHTML`)
	if i := strings.Index(html, key[12:44]); i >= 0 {
		t.Fatalf("after Done the page still holds the key: ...%s...", html[max(0, i-300):min(len(html), i+100)])
	}
	if !strings.Contains(html, key[:12]) {
		t.Errorf("the page does not show the key's prefix %s", key[:12])
	}
	if v := webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value + document.getElementById("reveal-curl").textContent`); v != "" {
		t.Error("the dialog's fields still hold the key")
	}

	row := `#keys tr[data-status="Active"]`
	if got := webtest.Eval[string](t, ctx, `document.querySelector('`+row+` .key-name').textContent`); got != "laptop" {
		t.Errorf("row name %q", got)
	}
	if got := webtest.Eval[string](t, ctx, `document.querySelector('`+row+` .prefix').textContent`); got != key[:12]+"…" {
		t.Errorf("row prefix %q, want %s…", got, key[:12])
	}
	if got := dotColour(t, ctx, row); got != green {
		t.Errorf("Active dot is %s, want green %s", got, green)
	}
	cells := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('`+row+` td'), td => td.textContent.trim())`)
	if len(cells) != 7 || cells[3] != "-" || cells[4] != "Never" || cells[5] == "-" || !strings.Contains(cells[2], "Active") {
		t.Errorf("row cells %q: want status Active, usage not counted (-), last used Never, an expiry date", cells)
	}
	if status := s.chat(t, key); status != http.StatusOK {
		t.Fatalf("the gateway answered the new key with %d", status)
	}
	webtest.Screenshot(t, ctx, "console-list")

	// Revoke through the row menu and the confirmation.
	webtest.Do(t, ctx, "opening the row menu",
		chromedp.Click(chromedp.CSS(`button[aria-label="Actions for laptop"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="menu"] [data-revoke]`)),
		chromedp.Click(chromedp.CSS(`[role="menu"] [data-revoke]`)),
		chromedp.WaitVisible(chromedp.ID("revoke-confirm")),
	)
	if title := webtest.Eval[string](t, ctx, `document.getElementById("revoke-title").textContent`); title != "Revoke laptop?" {
		t.Errorf("confirmation title %q", title)
	}
	if desc := webtest.Eval[string](t, ctx, `document.getElementById("revoke-desc").textContent`); !strings.Contains(desc, "immediately") || !strings.Contains(desc, "cannot be undone") {
		t.Errorf("confirmation text %q", desc)
	}
	webtest.Screenshot(t, ctx, "console-revoke-confirm")
	webtest.Do(t, ctx, "confirming", chromedp.Click(chromedp.ID("revoke-confirm")))
	webtest.WaitJS(t, ctx, "the row shows Revoked", `document.querySelector('#keys tbody tr').dataset.status === "Revoked"`)
	// Said only once the gateway replicas refuse it (the one here).
	if got := webtest.Eval[string](t, ctx, `document.getElementById("toast").textContent`); got != "laptop was revoked: every gateway replica (1) refuses it." {
		t.Errorf("toast after revoking: %q", got)
	}
	if !webtest.Eval[bool](t, ctx, `window.stillTheSamePage === true`) {
		t.Error("the page reloaded to show the revocation")
	}
	if got := dotColour(t, ctx, `#keys tr[data-status="Revoked"]`); got != gray {
		t.Errorf("Revoked dot is %s, want gray %s", got, gray)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll('#keys [data-revoke], #keys [data-rotate]').length`); n != 0 {
		t.Error("a revoked row still has a Revoke or Rotate item")
	}
	if items := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('#keys [role="menuitem"]'), e => e.textContent.trim())`); !slices.Equal(items, []string{"Delete"}) {
		t.Errorf("the revoked row's menu offers %q, want only Delete", items)
	}
	s.waitForStatus(t, key, http.StatusUnauthorized)
	webtest.Screenshot(t, ctx, "console-revoked")
}

func TestBrowserMarkupInNameIsText(t *testing.T) {
	team := env.Namespace(t)
	s, ctx, watch := devStack(t, team)
	defer watch.Check(t) // an alert would be a problem
	const evil = `<img src=x onerror=alert(1)>`
	createInPage(t, ctx, evil, "")
	clickDone(t, ctx)
	if got := webtest.Eval[string](t, ctx, `document.querySelector("#keys .key-name").textContent`); got != evil {
		t.Errorf("name shows as %q, want the literal text", got)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys img, dialog img").length`); n != 0 {
		t.Errorf("the name became %d img elements", n)
	}
	webtest.Do(t, ctx, "asking to revoke",
		chromedp.Click(chromedp.CSS(`#keys [aria-haspopup="menu"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="menu"] [data-revoke]`)),
		chromedp.Click(chromedp.CSS(`[role="menu"] [data-revoke]`)),
		chromedp.WaitVisible(chromedp.ID("revoke-confirm")),
	)
	if title := webtest.Eval[string](t, ctx, `document.getElementById("revoke-title").textContent`); title != "Revoke "+evil+"?" {
		t.Errorf("confirmation title %q", title)
	}
	if label := webtest.Eval[string](t, ctx, `document.querySelector('#keys [aria-haspopup="menu"]').getAttribute("aria-label")`); label != "Actions for "+evil {
		t.Errorf("menu button label %q", label)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("img:not(.brand img)").length`); n != 0 {
		t.Errorf("%d img elements appeared", n)
	}
	webtest.Do(t, ctx, "cancelling", chromedp.KeyEvent(kb.Escape))
	webtest.WaitJS(t, ctx, "the confirmation is closed", `!document.getElementById("revoke-dialog").open`)

	// The dev user also made a key with kubectl in a team namespace, with
	// the same name and the same markup. The console lists it, tagged with
	// its namespace, and offers Rotate and Revoke, as for its own keys.
	name := webtest.Eval[string](t, ctx, `document.querySelector("#keys tbody tr").dataset.name`)
	kubectlKey(t, team, name, console.DevUser, evil)
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys tbody tr").length`); n != 2 {
		t.Fatalf("%d rows, want the console key and the kubectl key", n)
	}
	teamRow := fmt.Sprintf(`#keys tr[data-namespace=%q][data-name=%q]`, team, name)
	consoleRow := fmt.Sprintf(`#keys tr[data-namespace=%q][data-name=%q]`, s.Namespace, name)
	q := func(sel string) string { return fmt.Sprintf("document.querySelector(%q)", sel) }
	if got := webtest.Eval[string](t, ctx, q(teamRow+" .key-name")+".textContent"); got != evil {
		t.Errorf("the kubectl key's name shows as %q, want the literal text", got)
	}
	if got := webtest.Eval[string](t, ctx, q(teamRow+" .ns-tag")+".textContent"); got != "namespace "+team {
		t.Errorf("namespace tag %q, want %q (the first word for screen readers only)", got, "namespace "+team)
	}
	if webtest.Eval[bool](t, ctx, q(consoleRow+" .ns-tag")+" !== null") {
		t.Error("the console's own key has a namespace tag")
	}
	// Ids tie each menu to its button: none may be shared by the two keys.
	ids := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys [id]"), e => e.id)`)
	if len(ids) != 4 || len(ids) != len(slices.Compact(slices.Sorted(slices.Values(ids)))) {
		t.Errorf("ids in the table %q: want four (two menu buttons, two menus), all different", ids)
	}

	webtest.Do(t, ctx, "opening the kubectl key's menu", chromedp.Click(chromedp.CSS(teamRow+` [aria-haspopup="menu"]`)))
	webtest.WaitJS(t, ctx, "its menu is open", q(teamRow+` [role="menu"]`)+".hidden === false")
	if webtest.Eval[bool](t, ctx, q(consoleRow+` [role="menu"]`)+".hidden === false") {
		t.Error("the button of the kubectl key opened the console key's menu")
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll('`+teamRow+` [data-revoke]').length`); n != 1 {
		t.Error("the kubectl key's menu does not offer Revoke")
	}
	if got := webtest.Eval[string](t, ctx, `document.activeElement.textContent + " | " + document.activeElement.dataset.namespace`); got != "Rotate | "+team {
		t.Errorf("focus is on %q, want the Rotate item of the key in %s", got, team)
	}
	webtest.Screenshot(t, ctx, "console-kubectl-key-menu")
	webtest.Do(t, ctx, "closing the menu", chromedp.KeyEvent(kb.Escape))

	// Revoking the console key leaves the kubectl key of the same name alone.
	webtest.Do(t, ctx, "revoking the console key",
		chromedp.Click(chromedp.CSS(consoleRow+` [aria-haspopup="menu"]`)),
		chromedp.WaitVisible(chromedp.CSS(consoleRow+` [data-revoke]`)),
		chromedp.Click(chromedp.CSS(consoleRow+` [data-revoke]`)),
		chromedp.WaitVisible(chromedp.ID("revoke-confirm")),
		chromedp.Click(chromedp.ID("revoke-confirm")),
	)
	webtest.WaitJS(t, ctx, "the console key shows Revoked", q(consoleRow)+`.dataset.status === "Revoked"`)
	if got := webtest.Eval[string](t, ctx, q(teamRow)+".dataset.status"); got != "Active" {
		t.Errorf("after revoking the console key, the kubectl key shows %s", got)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("img:not(.brand img)").length`); n != 0 {
		t.Errorf("%d img elements appeared", n)
	}
}

// The dialogs and the row menu work from the keyboard alone.
func TestBrowserKeyboard(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	active := func() string {
		return webtest.Eval[string](t, ctx, `(document.activeElement.getAttribute("aria-label") || document.activeElement.id || document.activeElement.textContent).trim()`)
	}
	insideOpenDialog := `!!document.activeElement.closest("dialog[open]")`

	// Enter on "Create key" opens the dialog with the name field focused.
	webtest.Do(t, ctx, "pressing Enter on Create key", chromedp.Focus(chromedp.CSS(".page-header [data-open-create]")), chromedp.KeyEvent(kb.Enter))
	webtest.WaitJS(t, ctx, "the dialog is open", `document.getElementById("create-dialog").open`)
	if got := active(); got != "create-name" {
		t.Errorf("focus is on %q, want the name field", got)
	}
	// Tab cycles inside the dialog.
	for i := range 12 {
		webtest.Do(t, ctx, "pressing Tab", chromedp.KeyEvent(kb.Tab))
		if !webtest.Eval[bool](t, ctx, insideOpenDialog) {
			t.Fatalf("Tab #%d left the dialog for %q", i+1, active())
		}
	}
	// Esc closes it and focus returns to the button.
	webtest.Do(t, ctx, "pressing Esc", chromedp.KeyEvent(kb.Escape))
	webtest.WaitJS(t, ctx, "the dialog is closed", `!document.getElementById("create-dialog").open`)
	if got := active(); got != "Create key" {
		t.Errorf("after Esc focus is on %q, want Create key", got)
	}

	// Create with the keyboard: type a name, Enter submits; Esc on the key
	// closes the dialog and the key is gone.
	webtest.Do(t, ctx, "creating with the keyboard", chromedp.KeyEvent(kb.Enter))
	webtest.WaitJS(t, ctx, "the dialog is open", `document.activeElement.id === "create-name"`)
	webtest.Do(t, ctx, "typing a name", chromedp.KeyEvent("ci"))
	webtest.WaitJS(t, ctx, "the name is typed", `document.getElementById("create-name").value === "ci"`)
	webtest.Do(t, ctx, "submitting with Enter", chromedp.KeyEvent(kb.Enter), chromedp.WaitVisible(chromedp.ID("reveal-key")))
	key := webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`)
	handedOut.Store(key, true)
	if got := active(); got != "reveal-key" {
		t.Errorf("focus is on %q, want the key field", got)
	}
	webtest.Do(t, ctx, "pressing Esc on the key", chromedp.KeyEvent(kb.Escape))
	webtest.WaitJS(t, ctx, "the dialog is closed", `!document.getElementById("create-dialog").open`)
	if strings.Contains(webtest.Eval[string](t, ctx, `document.documentElement.outerHTML`), key) {
		t.Error("after Esc the page still holds the key")
	}
	webtest.WaitJS(t, ctx, "the row is there", `document.querySelector('#keys [aria-haspopup="menu"]') !== null`)

	// The row menu: Enter opens it on its first item (Rotate, as the dev
	// user owns the key), Esc closes it back onto its button, ArrowUp
	// opens it on its last item (Revoke).
	menuOpen := `document.querySelector('#keys [role="menu"]').hidden === false`
	webtest.Do(t, ctx, "opening the menu with Enter", chromedp.Focus(chromedp.CSS(`#keys [aria-haspopup="menu"]`)), chromedp.KeyEvent(kb.Enter))
	webtest.WaitJS(t, ctx, "the menu is open", menuOpen)
	if got := active(); got != "Rotate" {
		t.Errorf("focus is on %q, want the Rotate item", got)
	}
	if exp := webtest.Eval[string](t, ctx, `document.querySelector('#keys [aria-haspopup="menu"]').getAttribute("aria-expanded")`); exp != "true" {
		t.Errorf("aria-expanded = %s while open", exp)
	}
	webtest.Do(t, ctx, "closing the menu with Esc", chromedp.KeyEvent(kb.Escape))
	webtest.WaitJS(t, ctx, "the menu is closed", "!("+menuOpen+")")
	if got := active(); got != "Actions for ci" {
		t.Errorf("after Esc focus is on %q, want the menu button", got)
	}
	webtest.Do(t, ctx, "opening the menu with ArrowUp", chromedp.KeyEvent(kb.ArrowUp))
	webtest.WaitJS(t, ctx, "the menu is open", menuOpen)
	if got := active(); got != "Revoke" {
		t.Errorf("focus is on %q, want the Revoke item", got)
	}
	webtest.Do(t, ctx, "choosing Revoke with Enter", chromedp.KeyEvent(kb.Enter))
	webtest.WaitJS(t, ctx, "the confirmation is open", `document.getElementById("revoke-dialog").open`)
	if got := active(); got != "Cancel" {
		t.Errorf("the confirmation focuses %q, want Cancel (the safe choice)", got)
	}
	webtest.Do(t, ctx, "cancelling with Esc", chromedp.KeyEvent(kb.Escape))
	webtest.WaitJS(t, ctx, "the confirmation is closed", `!document.getElementById("revoke-dialog").open`)
	if status := webtest.Eval[string](t, ctx, `document.querySelector("#keys tbody tr").dataset.status`); status != "Active" {
		t.Errorf("cancelling left the key %s", status)
	}

	// Every form control has a label.
	unlabelled := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("input, select, button")).filter(e => !(e.labels && e.labels.length) && !e.getAttribute("aria-label") && !e.textContent.trim()).map(e => e.outerHTML)`)
	if len(unlabelled) > 0 {
		t.Errorf("controls without a label: %q", unlabelled)
	}
}

// At 360px the table becomes cards without sideways scrolling, and dark
// mode follows prefers-color-scheme.
func TestBrowserNarrowScreenAndDarkMode(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	createInPage(t, ctx, "phone", "90")
	clickDone(t, ctx)
	webtest.Do(t, ctx, "narrowing the window", chromedp.EmulateViewport(360, 780), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	if w := webtest.Eval[int](t, ctx, `document.documentElement.scrollWidth`); w > 360 {
		t.Errorf("the page is %dpx wide at 360px: it scrolls sideways", w)
	}
	webtest.Screenshot(t, ctx, "console-360")
	webtest.Do(t, ctx, "opening the dialog", chromedp.Click(chromedp.CSS(".page-header [data-open-create]")), chromedp.WaitVisible(chromedp.ID("create-name")))
	if w := webtest.Eval[int](t, ctx, `Math.ceil(document.getElementById("create-dialog").getBoundingClientRect().right)`); w > 360 {
		t.Errorf("the dialog reaches %dpx at 360px", w)
	}
	webtest.Screenshot(t, ctx, "console-360-dialog")
	webtest.Do(t, ctx, "closing", chromedp.KeyEvent(kb.Escape))

	dark := chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}},
		})
		return err
	})
	webtest.Do(t, ctx, "switching to dark mode", chromedp.EmulateViewport(1280, 800), dark)
	bg := webtest.Eval[string](t, ctx, `getComputedStyle(document.body).backgroundColor`)
	if lum := luminance(bg); lum > 0.2 {
		t.Errorf("dark mode background %s is not dark", bg)
	}
	webtest.Screenshot(t, ctx, "console-dark")
}

// luminance of an "rgb(r, g, b)" colour, 0 (black) to 1 (white).
func luminance(rgb string) float64 {
	parts := strings.Split(strings.TrimSuffix(strings.TrimPrefix(rgb, "rgb("), ")"), ",")
	if len(parts) != 3 {
		return 1
	}
	sum := 0.0
	for _, p := range parts {
		v, _ := strconv.Atoi(strings.TrimSpace(p))
		sum += float64(v)
	}
	return sum / (3 * 255)
}

// An admin sees everyone's keys with an Owner column and narrows them with
// the owner filter.
func TestBrowserAdminView(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) {
		o.Console.Auth = console.AuthDev
		o.Console.DevGroups = []string{gatewayv1alpha1.DefaultAdminGroup}
	})
	// Keys of other users, created as an admin of the cluster would.
	for _, owner := range []string{"alice@example.com", "bob@example.com"} {
		kubectlKey(t, s.Namespace, "", owner, "created with kubectl by "+owner)
	}
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	webtest.Do(t, ctx, "opening the console", chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	createInPage(t, ctx, "admin's own", "")
	clickDone(t, ctx)

	owners := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys td.col-owner"), td => td.textContent)`)
	slices.Sort(owners)
	if !slices.Equal(owners, []string{"alice@example.com", "bob@example.com", console.DevUser}) {
		t.Errorf("owner column shows %q", owners)
	}
	if badge := webtest.Eval[string](t, ctx, `document.querySelector(".whoami .badge").textContent`); badge != "Admin" {
		t.Errorf("no Admin badge, got %q", badge)
	}
	webtest.Screenshot(t, ctx, "console-admin")

	// Choosing an owner loads the filtered page.
	if _, err := chromedp.Run(ctx, chromedp.WaitEvent(page.LoadEventFired, nil, chromedp.SetValue(chromedp.ID("owner"), "bob@example.com"))); err != nil {
		t.Fatalf("filtering by bob: %v", err)
	}
	if got := webtest.Eval[string](t, ctx, `location.search`); got != "?owner=bob%40example.com" {
		t.Errorf("filter URL %q", got)
	}
	owners = webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys td.col-owner"), td => td.textContent)`)
	if !slices.Equal(owners, []string{"bob@example.com"}) {
		t.Errorf("filtered by bob, the owner column shows %q", owners)
	}
}

// Refusals are shown in the dialog, in words, next to the field at fault.
func TestBrowserShowsErrorsInTheDialog(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	// The browser logs the refused requests; the page explains them.
	watch.Expect("status of 409 (Conflict)")
	watch.Expect("status of 400 (Bad Request)")
	createWithResourceName := func(name string) {
		t.Helper()
		webtest.Do(t, ctx, "creating "+name,
			chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
			chromedp.WaitVisible(chromedp.ID("create-name")),
			chromedp.Click(chromedp.CSS("details.advanced summary")),
			chromedp.SendKeys(chromedp.ID("create-resource-name"), name),
			chromedp.Click(chromedp.ID("create-submit")),
		)
	}
	createWithResourceName("ci")
	webtest.Do(t, ctx, "waiting for the key", chromedp.WaitVisible(chromedp.ID("reveal-key")))
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`), true)
	clickDone(t, ctx)

	for name, want := range map[string]string{
		"ci":       `A key named "ci" already exists.`,
		"Bad Name": "cannot be used as a resource name",
	} {
		createWithResourceName(name)
		webtest.Do(t, ctx, "waiting for the error", chromedp.WaitVisible(chromedp.ID("create-error")))
		msg := webtest.Eval[string](t, ctx, `document.getElementById("create-error").textContent`)
		if !strings.Contains(msg, want) {
			t.Errorf("creating %q: the dialog says %q, want %q", name, msg, want)
		}
		if !webtest.Eval[bool](t, ctx, `document.getElementById("create-dialog").open && document.activeElement.id === "create-resource-name" && document.activeElement.getAttribute("aria-invalid") === "true"`) {
			t.Errorf("creating %q: the dialog closed, or the resource name field is not focused and marked invalid", name)
		}
		webtest.Screenshot(t, ctx, "console-error")
		webtest.Do(t, ctx, "cancelling", chromedp.Click(chromedp.CSS("#create-form [data-close]")))
		webtest.WaitJS(t, ctx, "the dialog is closed", `!document.getElementById("create-dialog").open`)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys tbody tr").length`); n != 1 {
		t.Errorf("%d rows, want only the one key created", n)
	}
}
