package console_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/codevector/codevector/gateway/web/webtest"
	"github.com/codevector/codevector/internal/testenv"
)

// waitThroughNavigation polls predicate while the tab may be navigating
// (webtest.WaitJS gives up when the page it polls goes away).
func waitThroughNavigation(t *testing.T, ctx context.Context, what, predicate string) {
	t.Helper()
	testenv.Eventually(t, 20*time.Second, func() error {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](predicate))
		if err != nil {
			return err
		}
		if !ok {
			return errors.New("not yet: " + what)
		}
		return nil
	})
}

// TestBrowserOIDCSignIn drives the console's own sign-in in chromium
// against a real OIDC provider on loopback: sign in, see only your keys,
// create one, lose the session and be sent back through sign-in, sign
// out, and sign in as an admin.
func TestBrowserOIDCSignIn(t *testing.T) {
	p := startIDP(t)
	clock := testenv.FakeClock(t)
	s := oidcStack(t, p, clock)
	alices := kubectlKey(t, s.Namespace, "", "alice@example.com", "alice's kubectl key")
	bobs := kubectlKey(t, s.Namespace, "", "bob@example.com", "bob's kubectl key")

	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// The page's script asks for the page once the session has ended and
	// is told 401, which chromium logs; the page then signs in again.
	watch.Expect("401")

	// Opening the console sends alice to the provider and back.
	p.queue("alice@example.com", "engineering")
	webtest.Do(t, ctx, "opening the console", chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	if got := webtest.Eval[string](t, ctx, `location.href`); got != s.URL+"/api-keys" {
		t.Errorf("after signing in the browser is at %s", got)
	}
	if n := p.authorizations.Load(); n != 1 {
		t.Errorf("%d visits to the provider, want 1", n)
	}
	if got := webtest.Eval[string](t, ctx, `document.querySelector(".whoami-name").textContent`); got != "alice@example.com" {
		t.Errorf("signed in as %q", got)
	}
	if cookies := webtest.Eval[string](t, ctx, `document.cookie`); cookies != "" {
		t.Errorf("page script can read cookies %q; the session cookie must be HttpOnly", cookies)
	}
	rows := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys tbody tr"), tr => tr.dataset.name)`)
	if len(rows) != 1 || rows[0] != alices.Name {
		t.Errorf("alice sees rows %v, want only her key %s (not bob's %s)", rows, alices.Name, bobs.Name)
	}
	webtest.Screenshot(t, ctx, "console-oidc-signed-in")

	key := createInPage(t, ctx, "laptop", "30")
	clickDone(t, ctx)
	webtest.WaitJS(t, ctx, "the new key is in the table", `document.querySelectorAll("#keys tbody tr").length === 2`)
	if status := s.chat(t, key); status != 200 {
		t.Errorf("the gateway answered the key made in the page with %d", status)
	}

	// The session ends. The page notices on its next quiet refresh and
	// loads itself again, which goes through the provider and back.
	clock.Step(sessionLifetime + time.Minute)
	p.queue("alice@example.com", "engineering")
	webtest.Eval[bool](t, ctx, `window.beforeTheSessionEnded = true`)
	webtest.Eval[bool](t, ctx, `document.dispatchEvent(new Event("visibilitychange")) || true`)
	waitThroughNavigation(t, ctx, "the page signed in again", `window.beforeTheSessionEnded === undefined && document.getElementById("keys") !== null && document.readyState === "complete"`)
	if n := p.authorizations.Load(); n != 2 {
		t.Errorf("%d visits to the provider, want 2 (the expired session sends you to sign in)", n)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys tbody tr").length`); n != 2 {
		t.Errorf("after signing in again alice sees %d keys, want 2", n)
	}

	// Sign out: the signed-out page, and the API no longer knows her.
	webtest.Do(t, ctx, "signing out", chromedp.Click(chromedp.ID("sign-out")), chromedp.WaitVisible(chromedp.ID("sign-in")))
	if h := webtest.Eval[string](t, ctx, `document.querySelector("h1").textContent`); h != "Signed out" {
		t.Errorf("after signing out the page says %q", h)
	}
	logout := webtest.Eval[string](t, ctx, `document.getElementById("provider-sign-out").href`)
	if !strings.HasPrefix(logout, p.endSession+"?") {
		t.Errorf("the provider sign-out link is %q", logout)
	}
	webtest.Screenshot(t, ctx, "console-oidc-signed-out")
	status, err := chromedp.Run(ctx, chromedp.Evaluate[int](`fetch("/api/v1/apikeys").then(r => r.status)`, chromedp.EvalAwaitPromise))
	if err != nil || status != 401 {
		t.Errorf("the API after signing out: %d %v", status, err)
	}

	// "Sign in again", as carol, an admin by her groups claim.
	p.queue("carol@example.com", "codevector:admins")
	webtest.Do(t, ctx, "signing in as carol", chromedp.Click(chromedp.ID("sign-in")), chromedp.WaitVisible(chromedp.ID("keys")))
	if got := webtest.Eval[string](t, ctx, `document.querySelector(".whoami").textContent`); !strings.Contains(got, "carol@example.com") || !strings.Contains(got, "Admin") {
		t.Errorf("signed in as %q, want carol with the Admin badge", got)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys tbody tr").length`); n != 3 {
		t.Errorf("the admin sees %d keys, want all 3", n)
	}
	if !webtest.Eval[bool](t, ctx, `document.querySelector("th.col-owner") !== null && document.getElementById("owner-filter") !== null`) {
		t.Error("the admin view has no Owner column or owner filter")
	}
	webtest.Screenshot(t, ctx, "console-oidc-admin")
}
