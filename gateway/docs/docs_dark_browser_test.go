package docs_test

import (
	"context"
	"testing"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/codevector/codevector/gateway/web/webtest"
)

// The error under the gateway URL field is red, in the dark theme too,
// not the muted grey of the status line above it.
func TestBrowserDocsURLErrorIsRedInBothThemes(t *testing.T) {
	srv := newDocsServer(t)
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// site.css: --danger of the light and of the dark theme.
	for scheme, red := range map[string]string{"light": "rgb(217, 45, 32)", "dark": "rgb(249, 112, 102)"} {
		webtest.Do(t, ctx, "entering a bad URL in the "+scheme+" theme",
			chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
				_, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
					Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}},
				})
				return err
			}),
			chromedp.Navigate(srv.URL+"/docs/api-keys"), chromedp.WaitVisible(chromedp.ID("gateway-url")),
			clearURL,
			chromedp.SendKeys(chromedp.ID("gateway-url"), "not a url"),
			chromedp.Click(chromedp.CSS(`#gateway-form button[type="submit"]`)),
			chromedp.WaitVisible(chromedp.ID("gateway-error")),
		)
		if got := webtest.Eval[string](t, ctx, `getComputedStyle(document.getElementById("gateway-error")).color`); got != red {
			t.Errorf("in the %s theme the error is %s, want red %s", scheme, got, red)
		}
		webtest.Screenshot(t, ctx, "docs-url-error-"+scheme)
	}
}
