package docs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/codevector/codevector/gateway/web/webtest"
)

// gatewayView is what a docs page shows of the gateway URL.
type gatewayView struct {
	Spans []string // text of every [data-gateway-url]
	Links []string // href of every a[data-gateway-path]
	Curls []string // text of every code block that runs curl
	Input string
	Saved *string // localStorage value, nil when nothing is pinned
}

const readView = `(() => ({
  Spans: Array.from(document.querySelectorAll("[data-gateway-url]"), e => e.textContent),
  Links: Array.from(document.querySelectorAll("a[data-gateway-path]"), a => a.href),
  Curls: Array.from(document.querySelectorAll("pre.code code"), c => c.textContent).filter(t => t.startsWith("curl ")),
  Input: document.getElementById("gateway-url").value,
  Saved: localStorage.getItem("codevector.gatewayURL"),
}))()`

// clearURL empties the URL field, as selecting all and deleting would.
var clearURL = chromedp.Evaluate[chromedp.Void](`document.getElementById("gateway-url").value = ""`)

func view(t *testing.T, ctx context.Context) gatewayView {
	t.Helper()
	raw := webtest.Eval[[]byte](t, ctx, readView)
	var v gatewayView
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// assertUses checks that every route, curl example and console link on
// the page uses base.
func assertUses(t *testing.T, page string, v gatewayView, base string) {
	t.Helper()
	if len(v.Spans) < 3 || len(v.Curls) == 0 || len(v.Links) < 2 {
		t.Fatalf("%s: too few gateway mentions to prove anything: %+v", page, v)
	}
	for _, s := range v.Spans {
		if s != base {
			t.Errorf("%s: a route shows %q, want %q", page, s, base)
		}
	}
	for _, c := range v.Curls {
		if !strings.HasPrefix(c, "curl "+base+"/gateway/") {
			t.Errorf("%s: curl example does not use %s: %q", page, base, c)
		}
	}
	for _, l := range v.Links {
		if !strings.HasPrefix(l, base+"/api-keys") {
			t.Errorf("%s: console link %q does not go to %s/api-keys", page, l, base)
		}
	}
	if v.Input != base {
		t.Errorf("%s: the URL field shows %q, want %q", page, v.Input, base)
	}
}

func TestBrowserDocsGatewayURLFollowsEveryPageAndReload(t *testing.T) {
	srv := newDocsServer(t)
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	quickstart, apiKeys := srv.URL+"/docs/quickstart", srv.URL+"/docs/api-keys"

	// Nothing pinned: the page's own origin.
	webtest.Do(t, ctx, "opening the quickstart", chromedp.Navigate(quickstart), chromedp.WaitVisible(chromedp.ID("gateway-url")))
	assertUses(t, "quickstart, unpinned", view(t, ctx), srv.URL)
	webtest.Screenshot(t, ctx, "docs-quickstart")

	// Pin a host without a scheme; the card makes it https and rewrites the
	// page at once, without a reload.
	const pinned = "https://gw.example.test:8443"
	webtest.Do(t, ctx, "pinning a gateway URL",
		clearURL,
		chromedp.SendKeys(chromedp.ID("gateway-url"), "gw.example.test:8443/"),
		chromedp.Click(chromedp.CSS(`#gateway-form button[type="submit"]`)),
	)
	webtest.WaitJS(t, ctx, "the page follows the pinned URL", fmt.Sprintf(`document.querySelector("[data-gateway-url]").textContent === %q`, pinned))
	v := view(t, ctx)
	assertUses(t, "quickstart, pinned", v, pinned)
	if v.Saved == nil || *v.Saved != pinned {
		t.Errorf("localStorage holds %v, want %q", v.Saved, pinned)
	}

	// A second page follows it, and so does a reload of each.
	webtest.Do(t, ctx, "opening the API keys page", chromedp.Navigate(apiKeys), chromedp.WaitVisible(chromedp.ID("gateway-url")))
	v = view(t, ctx)
	assertUses(t, "api-keys, pinned", v, pinned)
	if len(v.Curls) < 2 {
		t.Errorf("api-keys: want at least two curl examples, got %d", len(v.Curls))
	}
	webtest.Screenshot(t, ctx, "docs-api-keys-pinned")
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("gateway-url")))
	assertUses(t, "api-keys after reload", view(t, ctx), pinned)

	// Reset goes back to the page's origin, for good.
	webtest.Do(t, ctx, "resetting", chromedp.Click(chromedp.ID("gateway-reset")))
	webtest.WaitJS(t, ctx, "the page follows its origin again", `document.querySelector("[data-gateway-url]").textContent === location.origin`)
	v = view(t, ctx)
	assertUses(t, "api-keys after reset", v, srv.URL)
	if v.Saved != nil {
		t.Errorf("localStorage still holds %q after Reset", *v.Saved)
	}
	webtest.Do(t, ctx, "opening the quickstart again", chromedp.Navigate(quickstart), chromedp.WaitVisible(chromedp.ID("gateway-url")))
	assertUses(t, "quickstart after reset", view(t, ctx), srv.URL)
}

func TestBrowserDocsRefusesNonHTTPURL(t *testing.T) {
	srv := newDocsServer(t)
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	webtest.Do(t, ctx, "opening the docs", chromedp.Navigate(srv.URL+"/docs/api-keys"), chromedp.WaitVisible(chromedp.ID("gateway-url")))
	for _, bad := range []string{"javascript:alert(1)", "https://user:pw@gw.example.test", "not a url"} {
		webtest.Do(t, ctx, "entering "+bad,
			clearURL,
			chromedp.SendKeys(chromedp.ID("gateway-url"), bad),
			chromedp.Click(chromedp.CSS(`#gateway-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("gateway-error")),
		)
		v := view(t, ctx)
		if v.Saved != nil {
			t.Errorf("%q was stored as %q", bad, *v.Saved)
		}
		for _, l := range v.Links {
			if !strings.HasPrefix(l, srv.URL+"/") {
				t.Errorf("after %q a console link points to %q", bad, l)
			}
		}
	}
	msg := webtest.Eval[string](t, ctx, `document.getElementById("gateway-error").textContent`)
	if !strings.Contains(msg, "https://gateway.example.com") {
		t.Errorf("error %q does not show what to enter", msg)
	}
}

func TestBrowserDocsCodeBlocksHaveCopyButtons(t *testing.T) {
	srv := newDocsServer(t)
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	webtest.Do(t, ctx, "opening the docs", chromedp.Navigate(srv.URL+"/docs/quickstart"), chromedp.WaitVisible(chromedp.CSS(".copy-btn")))
	blocks := webtest.Eval[int](t, ctx, `document.querySelectorAll("pre.code").length`)
	buttons := webtest.Eval[int](t, ctx, `document.querySelectorAll(".code-block .copy-btn").length`)
	if blocks == 0 || buttons != blocks {
		t.Fatalf("%d code blocks, %d copy buttons", blocks, buttons)
	}
	webtest.Do(t, ctx, "copying the curl example", chromedp.Click(chromedp.CSS(".copy-btn")))
	webtest.WaitJS(t, ctx, "the button confirms", `document.querySelector(".copy-btn").textContent !== "Copy"`)
	if got := webtest.Eval[string](t, ctx, `document.querySelector(".copy-btn").textContent`); got != "Copied" {
		t.Errorf("copy button says %q, want Copied", got)
	}
}
