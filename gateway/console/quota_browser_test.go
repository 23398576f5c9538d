package console_test

import (
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/gateway/web/webtest"
)

// A create past --max-keys-per-user is explained in the create dialog,
// which stays open, like any other refusal.
func TestBrowserShowsKeyQuotaInTheDialog(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) {
		o.Console.Auth = console.AuthDev
		o.Console.MaxKeysPerUser = 1
	})
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// The browser logs the refused request; the page explains it.
	watch.Expect("status of 403 (Forbidden)")
	webtest.Do(t, ctx, "opening the console", chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	createInPage(t, ctx, "the only one", "")
	clickDone(t, ctx)

	webtest.Do(t, ctx, "creating a second key",
		chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
		chromedp.WaitVisible(chromedp.ID("create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "one too many"),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("create-error")),
	)
	msg := webtest.Eval[string](t, ctx, `document.getElementById("create-error").textContent`)
	if want := "You have 1 active key, the most this gateway allows per user. Revoke a key you no longer use, then try again."; !strings.Contains(msg, want) {
		t.Errorf("the dialog says %q, want %q", msg, want)
	}
	if !webtest.Eval[bool](t, ctx, `document.getElementById("create-dialog").open && document.getElementById("reveal-step").hidden`) {
		t.Error("the dialog closed, or went on to show a key")
	}
	webtest.Screenshot(t, ctx, "console-key-quota")
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll("#keys tbody tr").length`); n != 1 {
		t.Errorf("%d rows, want only the one key created", n)
	}
}
