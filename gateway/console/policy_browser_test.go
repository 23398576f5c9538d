package console_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/web/webtest"
	"github.com/codevector/codevector/internal/testenv"
)

// signedInAs makes every request of the tab carry the sign-in proxy's
// headers for email, so one tab can be the admin and then the owner.
func signedInAs(email string, groups ...string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
		h := network.Headers{"X-Forwarded-Email": email}
		if len(groups) > 0 {
			h["X-Forwarded-Groups"] = strings.Join(groups, ",")
		}
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: h})
		return err
	})
}

// An admin sets a budget and limits on alice's key from the console; the
// row shows them, then an Over budget badge and a full bar once the key
// has spent its budget; alice sees all of it read-only.
func TestBrowserAdminSetsLimitsOwnerReadsThem(t *testing.T) {
	s := startStack(t, true, nil)
	const alice = "alice@example.com"
	kubectlKey(t, s.Namespace, "laptop", alice, "alice's laptop")
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// The browser logs the refused budget; the dialog explains it.
	watch.Expect("status of 400 (Bad Request)")

	row := `#keys tr[data-name="laptop"]`
	text := func(sel string) string {
		t.Helper()
		return webtest.Eval[string](t, ctx, `(document.querySelector('`+sel+`') || {textContent: "(missing)"}).textContent.trim().replace(/\s+/g, " ")`)
	}
	webtest.Do(t, ctx, "opening the console as an admin",
		signedInAs("carol@example.com", gatewayv1alpha1.DefaultAdminGroup),
		chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	if got := text(row + " td.col-usage"); got != "-" {
		t.Errorf("a key without a policy shows usage %q, want -", got)
	}
	webtest.Do(t, ctx, "opening Edit limits from the row menu",
		chromedp.Click(chromedp.CSS(row+` [aria-haspopup="menu"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-edit-policy]`)),
		chromedp.Click(chromedp.CSS(row+` [data-edit-policy]`)),
		chromedp.WaitVisible(chromedp.ID("policy-models")),
	)
	if got := text("#policy-title"); got != "Edit limits for alice's laptop" {
		t.Errorf("dialog title %q", got)
	}
	webtest.Do(t, ctx, "saving a budget the console cannot read",
		chromedp.SendKeys(chromedp.ID("policy-budget"), "lots"),
		chromedp.Click(chromedp.ID("policy-submit")),
		chromedp.WaitVisible(chromedp.ID("policy-error")),
	)
	if got := text("#policy-error"); !strings.Contains(got, `The budget could not be read: "lots": give an amount in usd or tokens, like 50usd/month or 5Mtokens/day.`) {
		t.Errorf("the dialog says %q", got)
	}
	if !webtest.Eval[bool](t, ctx, `document.activeElement.id === "policy-budget" && document.activeElement.getAttribute("aria-invalid") === "true"`) {
		t.Error("the budget field is not focused and marked invalid")
	}
	webtest.Screenshot(t, ctx, "console-policy-error")

	webtest.Do(t, ctx, "saving models, limits and a budget",
		chromedp.SetValue(chromedp.ID("policy-budget"), "50usd/month"),
		chromedp.SendKeys(chromedp.ID("policy-models"), "gpt-4o*, claude-sonnet-*"),
		chromedp.SendKeys(chromedp.ID("policy-rpm"), "600"),
		chromedp.SendKeys(chromedp.ID("policy-concurrency"), "4"),
		chromedp.Click(chromedp.ID("policy-submit")),
	)
	webtest.WaitJS(t, ctx, "the dialog closes and the row shows the budget",
		`!document.getElementById("policy-dialog").open && document.querySelector('`+row+` .usage-summary')?.textContent === "$0 of $50"`)
	spec := storedKey(t, s.Namespace, "laptop").Spec
	if !slices.Equal(spec.Models, []gatewayv1alpha1.ModelGlob{"gpt-4o*", "claude-sonnet-*"}) || spec.Limits == nil || *spec.Limits.RequestsPerMinute != 600 ||
		spec.Limits.TokensPerMinute != nil || *spec.Limits.ConcurrentRequests != 4 || spec.Budget == nil || spec.Budget.USD != "50" {
		t.Errorf("stored: models %v, limits %+v, budget %+v", spec.Models, spec.Limits, spec.Budget)
	}
	webtest.Do(t, ctx, "opening the row's details", chromedp.Click(chromedp.CSS(row+" details.key-policy summary")))
	details := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('`+row+` details.key-policy dl > div'), d => d.querySelector("dt").textContent + " " + d.querySelector("dd").textContent.trim().replace(/\s+/g, " "))`)
	for i, want := range []string{"Models gpt-4o*, claude-sonnet-*", "Limits 600 requests per minute; 4 requests at a time", "Budget $50/month", "This period 0 requests, 0 input and 0 output tokens."} {
		if i >= len(details) || !strings.HasPrefix(details[i], want) {
			t.Errorf("row details %q, want line %d to start %q", details, i, want)
		}
	}
	if got := webtest.Eval[string](t, ctx, `document.querySelector('`+row+` meter').value + " " + document.querySelector('`+row+` meter').getAttribute("aria-label")`); got != "0 0% of the budget spent" {
		t.Errorf("budget meter: %q", got)
	}
	webtest.Screenshot(t, ctx, "console-policy-set")

	// The key spends $75 of its $50.
	putUsage(t, s.Namespace, "laptop", gatewayv1alpha1.Usage{PeriodStart: metav1.NewTime(monthStart()), Requests: 40, InputTokens: 120000, OutputTokens: 30000, USD: "75"})
	// The page reads the gateway's watch: reload once it has the spend.
	carol := s.as("carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	testenv.Eventually(t, 10*time.Second, func() error {
		l, _ := carol.list(t, "")
		for _, i := range l.Items {
			if i.Name == "laptop" && i.Usage != nil && i.Usage.Requests == 40 {
				return nil
			}
		}
		return errors.New("the gateway has not seen the key's spend yet")
	})
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	webtest.WaitJS(t, ctx, "the row shows the spend", `document.querySelector('`+row+` .usage-summary').textContent === "$75 of $50"`)
	if got := text(row + " .badge-danger"); got != "Over budget" {
		t.Errorf("badge %q, want Over budget", got)
	}
	if got := webtest.Eval[float64](t, ctx, `document.querySelector('`+row+` meter').value`); got != 1 {
		t.Errorf("the budget bar is at %v, want full", got)
	}
	webtest.Screenshot(t, ctx, "console-over-budget")

	// alice, the owner, sees it all and can change none of it.
	webtest.Do(t, ctx, "opening the console as alice", signedInAs(alice), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	if got := text(".whoami-name"); !strings.Contains(got, alice) {
		t.Fatalf("signed in as %q, want alice", got)
	}
	if got := text(row + " .badge-danger"); got != "Over budget" {
		t.Errorf("alice sees badge %q, want Over budget", got)
	}
	webtest.Do(t, ctx, "opening the row's details", chromedp.Click(chromedp.CSS(row+" details.key-policy summary")))
	if got := text(row + " details.key-policy"); !strings.Contains(got, "600 requests per minute") || !strings.Contains(got, "Set by your administrators") {
		t.Errorf("alice's row details: %q", got)
	}
	if n := webtest.Eval[int](t, ctx, `document.querySelectorAll('[data-edit-policy], #policy-dialog').length`); n != 0 {
		t.Errorf("alice's page has %d Edit limits items or dialogs", n)
	}
	webtest.Do(t, ctx, "opening alice's row menu", chromedp.Click(chromedp.CSS(row+` [aria-haspopup="menu"]`)))
	if items := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll('`+row+` [role="menuitem"]'), e => e.textContent)`); !slices.Equal(items, []string{"Rotate", "Revoke"}) {
		t.Errorf("alice's menu offers %q, want Rotate and Revoke", items)
	}
	webtest.Screenshot(t, ctx, "console-policy-owner")
}
