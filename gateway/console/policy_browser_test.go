package console_test

import (
	"context"
	"errors"
	"fmt"
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
		chromedp.WaitVisible(chromedp.ID("policy-budget-error")),
	)
	if got := text("#policy-budget-error"); got != "Write a budget like 50usd/month or 5Mtokens/day, or leave it empty." {
		t.Errorf("the budget field says %q", got)
	}
	if spec := storedKey(t, s.Namespace, "laptop").Spec; spec.HasPolicy() {
		t.Errorf("a budget the dialog refused was saved: %+v", spec)
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

// An admin's Edit limits dialog shows the guardrails of the key's namespace
// under its fields, as the create dialog does, refuses a value beyond them
// before sending anything, shows the API server's refusal at the field when
// the guardrails tightened meanwhile, and saves a value within them.
func TestBrowserEditLimitsWithinGuardrails(t *testing.T) {
	s := startStack(t, true, nil)
	g := env.BindGuardrails(t, s.Namespace, map[string]string{
		"allowedModels":            "gpt-4o*",
		"defaultRequestsPerMinute": "60",
		"maxRequestsPerMinute":     "600",
		"maxConcurrentRequests":    "8",
		"maxBudgetUSD":             "100",
		"maxBudgetPeriod":          "month",
	})
	waitForGuardrails(t, s.Namespace, 60, 600)
	setBy := "the guardrails of namespace " + s.Namespace + " (ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap + ")"
	// Made after the binding, so it has the guardrails' defaults.
	kubectlKey(t, s.Namespace, "laptop", "alice@example.com", "alice's laptop")
	before := storedKey(t, s.Namespace, "laptop")
	if l := before.Spec.Limits; l == nil || l.RequestsPerMinute == nil || *l.RequestsPerMinute != 60 {
		t.Fatalf("the key did not get the guardrails' defaults: limits %+v", before.Spec.Limits)
	}

	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// The API server's refusal at the end is logged by the browser; the
	// dialog explains it.
	watch.Expect("status of 400 (Bad Request)")
	text := func(id string) string {
		t.Helper()
		return webtest.TextOf(t, ctx, id)
	}
	// posts counts the policy changes the page sends.
	posts := func() int {
		t.Helper()
		return webtest.Eval[int](t, ctx, `window.policyPosts`)
	}
	row := `#keys tr[data-name="laptop"]`
	webtest.Do(t, ctx, "opening the console as an admin",
		signedInAs("carol@example.com", gatewayv1alpha1.DefaultAdminGroup),
		chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	webtest.Eval[bool](t, ctx, `(() => {
		window.policyPosts = 0;
		const send = window.fetch;
		window.fetch = function (url) {
			if (String(url).endsWith("/policy")) window.policyPosts++;
			return send.apply(this, arguments);
		};
		return true;
	})()`)
	webtest.Do(t, ctx, "opening Edit limits from the row menu",
		chromedp.Click(chromedp.CSS(row+` [aria-haspopup="menu"]`)),
		chromedp.WaitVisible(chromedp.CSS(row+` [data-edit-policy]`)),
		chromedp.Click(chromedp.CSS(row+` [data-edit-policy]`)),
		chromedp.WaitVisible(chromedp.ID("policy-models")),
	)
	webtest.WaitJS(t, ctx, "the dialog shows the guardrails", `!document.getElementById("policy-rpm-rule").hidden`)
	webtest.ExpectTexts(t, ctx, map[string]string{
		"policy-guardrails":       "This namespace has guardrails, shown below each field (set by " + setBy + ").",
		"policy-models-rule":      "Guardrail: within gpt-4o*; default gpt-4o*.",
		"policy-rpm-rule":         "Guardrail: at most 600; default 60.",
		"policy-concurrency-rule": "Guardrail: at most 8; default 8.",
		"policy-budget-rule":      "Guardrail: at most $100/month; default $100/month.",
	})
	if !webtest.Eval[bool](t, ctx, `document.getElementById("policy-tpm-rule").hidden`) {
		t.Errorf("tokens per minute, which the guardrails leave alone, shows %q", text("policy-tpm-rule"))
	}
	if got := webtest.Eval[string](t, ctx, `document.getElementById("policy-rpm").value`); got != "60" {
		t.Errorf("the dialog opens with %q requests per minute, want the key's 60", got)
	}
	webtest.Screenshot(t, ctx, "console-policy-guardrails")

	// Beyond the maximum: refused at the field, nothing sent.
	webtest.Do(t, ctx, "saving requests per minute beyond the guardrails",
		chromedp.SetValue(chromedp.ID("policy-rpm"), "601"),
		chromedp.Click(chromedp.ID("policy-submit")),
		chromedp.WaitVisible(chromedp.ID("policy-rpm-error")),
	)
	if got := text("policy-rpm-error"); got != "This namespace allows at most 600 requests per minute." {
		t.Errorf("#policy-rpm-error says %q", got)
	}
	if got := webtest.Eval[string](t, ctx, `document.activeElement.id + " " + document.activeElement.getAttribute("aria-invalid")`); got != "policy-rpm true" {
		t.Errorf("focus is on %q, want the requests per minute (policy-rpm true)", got)
	}
	if !webtest.Eval[bool](t, ctx, `document.getElementById("policy-dialog").open && document.getElementById("policy-error").hidden`) {
		t.Error("the dialog closed, or showed the refusal in its alert rather than at the field")
	}
	// Emptying a limit the guardrails bound would make it unlimited,
	// which is beyond any maximum.
	// (chromedp's SetValue cannot set an empty value.)
	webtest.Eval[bool](t, ctx, `document.getElementById("policy-concurrency").value = "", true`)
	webtest.Do(t, ctx, "removing the concurrency limit",
		chromedp.SetValue(chromedp.ID("policy-rpm"), "60"),
		chromedp.Click(chromedp.ID("policy-submit")),
		chromedp.WaitVisible(chromedp.ID("policy-concurrency-error")),
	)
	if got := text("policy-concurrency-error"); got != "This namespace allows at most 8 concurrent requests: give a limit." {
		t.Errorf("#policy-concurrency-error says %q", got)
	}
	if n := posts(); n != 0 {
		t.Errorf("the dialog sent %d policy changes beyond the guardrails", n)
	}
	if after := storedKey(t, s.Namespace, "laptop"); after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the APIKey changed: limits %+v", after.Spec.Limits)
	}
	webtest.Screenshot(t, ctx, "console-policy-beyond-guardrails")

	// The guardrails tighten while the dialog is open: its check passes,
	// the API server refuses, and the field shows the server's words.
	tightenGuardrails(t, g.ConfigMap, s.Namespace)
	webtest.Do(t, ctx, "saving requests per minute within the guardrails the dialog knows",
		chromedp.SetValue(chromedp.ID("policy-concurrency"), "8"),
		chromedp.SetValue(chromedp.ID("policy-rpm"), "500"),
		chromedp.Click(chromedp.ID("policy-submit")),
	)
	want := "The limits could not be saved: spec.limits.requestsPerMinute must be at most 100, as set by " + setBy + "."
	webtest.WaitJS(t, ctx, "the field shows the API server's refusal",
		`document.getElementById("policy-rpm-error").textContent === `+fmt.Sprintf("%q", want))
	if got := webtest.Eval[string](t, ctx, `document.activeElement.id + " " + document.activeElement.getAttribute("aria-invalid")`); got != "policy-rpm true" {
		t.Errorf("focus is on %q, want the requests per minute (policy-rpm true)", got)
	}
	if !webtest.Eval[bool](t, ctx, `document.getElementById("policy-error").hidden`) {
		t.Errorf("the refusal is shown twice: also in the alert %q", text("policy-error"))
	}
	if l := storedKey(t, s.Namespace, "laptop").Spec.Limits; l == nil || *l.RequestsPerMinute != 60 {
		t.Errorf("the refused change was stored: limits %+v", l)
	}

	// Within them: saved, and only the field changed.
	webtest.Do(t, ctx, "saving requests per minute within the guardrails",
		chromedp.SetValue(chromedp.ID("policy-rpm"), "80"),
		chromedp.Click(chromedp.ID("policy-submit")),
	)
	webtest.WaitJS(t, ctx, "the dialog closes", `!document.getElementById("policy-dialog").open`)
	if n := posts(); n != 2 {
		t.Errorf("the dialog sent %d policy changes, want 2 (the refused one and this)", n)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		spec := storedKey(t, s.Namespace, "laptop").Spec
		if l := spec.Limits; l == nil || l.RequestsPerMinute == nil || *l.RequestsPerMinute != 80 ||
			l.ConcurrentRequests == nil || *l.ConcurrentRequests != 8 || l.TokensPerMinute != nil ||
			!slices.Equal(spec.Models, []gatewayv1alpha1.ModelGlob{"gpt-4o*"}) || spec.Budget == nil || spec.Budget.USD != "100" {
			return fmt.Errorf("stored: models %v, limits %+v, budget %+v", spec.Models, spec.Limits, spec.Budget)
		}
		return nil
	})
}
