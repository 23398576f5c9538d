package console_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/gateway/web/webtest"
	"github.com/codevector/codevector/internal/testenv"
)

// tightenGuardrails lowers the requests-per-minute maximum of the
// guardrails in ConfigMap name to 100 (default 50), as an admin would while
// a dialog is open, and waits until admission enforces it in ns.
func tightenGuardrails(t *testing.T, name, ns string) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: name}, cm); err != nil {
		t.Fatal(err)
	}
	cm.Data["maxRequestsPerMinute"], cm.Data["defaultRequestsPerMinute"] = "100", "50"
	if err := env.Client.Update(context.Background(), cm); err != nil {
		t.Fatal(err)
	}
	waitForGuardrails(t, ns, 50, 100)
}

// waitForGuardrails waits until admission applies namespace ns's
// guardrails: the defaults (a key without limits gets rpm requests per
// minute) and the maxima (one above maxRPM is refused). Admission reads
// bindings and params through informers, a moment after they change.
func waitForGuardrails(t *testing.T, ns string, rpm, maxRPM int64) {
	t.Helper()
	testenv.Eventually(t, 15*time.Second, func() error {
		ttl, err := gatewayv1alpha1.NewLifetime("1h")
		if err != nil {
			t.Fatal(err)
		}
		k := &gatewayv1alpha1.APIKey{}
		k.Namespace, k.GenerateName, k.Spec.TTL = ns, "probe-", ttl
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err != nil {
			return fmt.Errorf("a key within the guardrails is refused: %v", err)
		}
		if l := k.Spec.Limits; l == nil || l.RequestsPerMinute == nil || *l.RequestsPerMinute != rpm {
			return fmt.Errorf("the guardrails' defaults are not in force yet: limits %+v", k.Spec.Limits)
		}
		over := maxRPM + 1
		k = &gatewayv1alpha1.APIKey{}
		k.Namespace, k.GenerateName, k.Spec.TTL = ns, "probe-", ttl
		k.Spec.Limits = &gatewayv1alpha1.Limits{RequestsPerMinute: &over}
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err == nil {
			return fmt.Errorf("the guardrails' maximum of %d requests per minute is not in force yet", maxRPM)
		}
		return nil
	})
}

// The create dialog offers expiry, models, limits and a budget, shows the
// namespace's guardrails next to them, refuses a value beyond one before
// sending it, and shows the API server's own refusal when the guardrails
// tightened meanwhile. The key it creates has what the dialog said, and the
// gateway holds it to that.
func TestBrowserCreateWithinGuardrails(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) { o.Console.Auth = console.AuthDev })
	g := env.BindGuardrails(t, s.Namespace, map[string]string{
		"allowedModels":            "gpt-4o*,claude-haiku-*",
		"defaultModels":            "gpt-4o-mini*",
		"defaultRequestsPerMinute": "60",
		"maxRequestsPerMinute":     "600",
		"maxTokensPerMinute":       "100000",
		"defaultBudgetTokens":      "1000000",
		"maxBudgetTokens":          "5000000",
		"maxBudgetPeriod":          "month",
		"defaultTTL":               "720h",
		"maxLifetime":              "2160h",
	})
	waitForGuardrails(t, s.Namespace, 60, 600)
	setBy := "the guardrails of namespace " + s.Namespace + " (ConfigMap " + gatewayv1alpha1.DefaultSystemNamespace + "/" + g.ConfigMap + ")"

	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	// The refusal the API server sends at the end is logged by the
	// browser; the dialog explains it.
	watch.Expect("status of 400 (Bad Request)")
	text := func(id string) string {
		t.Helper()
		return webtest.TextOf(t, ctx, id)
	}
	openDialog := func() {
		t.Helper()
		webtest.Do(t, ctx, "opening the create dialog",
			chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
			chromedp.WaitVisible(chromedp.ID("create-name")))
		webtest.WaitJS(t, ctx, "the dialog shows the guardrails", `!document.getElementById("create-rpm-rule").hidden`)
	}
	webtest.Do(t, ctx, "opening the console", chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")))
	openDialog()

	webtest.ExpectTexts(t, ctx, map[string]string{
		"create-guardrails":  "This namespace has guardrails, shown below each field (set by " + setBy + ").",
		"create-models-rule": "Guardrail: within gpt-4o*, claude-haiku-*; default gpt-4o-mini*.",
		"create-rpm-rule":    "Guardrail: at most 600; default 60.",
		"create-tpm-rule":    "Guardrail: at most 100,000; default 100,000.",
		"create-budget-rule": "Guardrail: at most 5M tokens/month; default 1M tokens/month.",
		"create-expiry-rule": "Guardrail: lives at most 2160h (90 days); default 720h.",
	})
	if got := text("create-models-hint"); !strings.HasSuffix(got, "Empty: the default below.") {
		t.Errorf("the models' hint says %q, want that empty means the default", got)
	}
	if got := webtest.Eval[string](t, ctx, `document.querySelector('#create-expiry option[value=""]').textContent`); got != "Namespace default (720h)" {
		t.Errorf("the expiry's first choice is %q, want the namespace default", got)
	}
	webtest.Screenshot(t, ctx, "console-create-guardrails")

	// Values beyond the guardrails: each field says so as it is left, and
	// Create sends nothing.
	webtest.Do(t, ctx, "entering values beyond the guardrails",
		chromedp.SendKeys(chromedp.ID("create-name"), "ci"),
		chromedp.SendKeys(chromedp.ID("create-models"), "gpt-4o-mini, claude-opus-4"),
		chromedp.SendKeys(chromedp.ID("create-rpm"), "1000"),
		chromedp.SendKeys(chromedp.ID("create-tpm"), "50000"),
		chromedp.SendKeys(chromedp.ID("create-budget"), "50usd/month"),
		chromedp.SetValue(chromedp.ID("create-expiry"), "custom"),
		chromedp.Click(chromedp.ID("create-name")), // leaves the budget, which checks it
	)
	webtest.Eval[bool](t, ctx, `document.getElementById("create-expiry").dispatchEvent(new Event("change")), true`)
	webtest.Do(t, ctx, "entering a lifetime beyond the guardrails",
		chromedp.SendKeys(chromedp.ID("create-expires"), "100d"),
		chromedp.Click(chromedp.ID("create-submit")),
	)
	for id, want := range map[string]string{
		"create-models-error":  "claude-opus-4 is not within the models this namespace allows: gpt-4o*, claude-haiku-*.",
		"create-rpm-error":     "This namespace allows at most 600 requests per minute.",
		"create-budget-error":  "This namespace allows a budget of at most 5M tokens/month (in tokens per month).",
		"create-expires-error": "Keys in this namespace may live at most 2160h (90 days): choose a shorter lifetime or an earlier date.",
		"create-tpm-error":     "",
	} {
		if got := text(id); got != want {
			t.Errorf("#%s says %q, want %q", id, got, want)
		}
		if invalid := webtest.Eval[bool](t, ctx, `!document.getElementById("`+id+`").hidden`); invalid != (want != "") {
			t.Errorf("#%s is shown: %v, want %v", id, invalid, want != "")
		}
	}
	if got := webtest.Eval[string](t, ctx, `document.activeElement.id + " " + document.activeElement.getAttribute("aria-invalid")`); got != "create-expires true" {
		t.Errorf("focus is on %q, want the first field at fault (create-expires true)", got)
	}
	webtest.Screenshot(t, ctx, "console-create-beyond-guardrails")
	var stored gatewayv1alpha1.APIKeyList
	if err := env.Client.List(context.Background(), &stored, client.InNamespace(s.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(stored.Items) != 0 {
		t.Fatalf("the dialog sent values beyond the guardrails: %d keys were created", len(stored.Items))
	}

	// Within them, the key is created with exactly those.
	webtest.Do(t, ctx, "correcting the values",
		chromedp.SetValue(chromedp.ID("create-models"), "gpt-4o-mini"),
		chromedp.SetValue(chromedp.ID("create-rpm"), "120"),
		chromedp.SetValue(chromedp.ID("create-budget"), "2Mtokens/month"),
		chromedp.SetValue(chromedp.ID("create-expires"), "12h"),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("reveal-key")),
	)
	key := webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`)
	handedOut.Store(key, true)
	clickDone(t, ctx)
	webtest.WaitJS(t, ctx, "the new row is in the table", `document.querySelector("#keys tbody tr") !== null`)
	name := webtest.Eval[string](t, ctx, `document.querySelector("#keys tbody tr").dataset.name`)
	spec := storedKey(t, s.Namespace, name).Spec
	if !slices.Equal(spec.Models, []gatewayv1alpha1.ModelGlob{"gpt-4o-mini"}) ||
		spec.Limits == nil || spec.Limits.RequestsPerMinute == nil || *spec.Limits.RequestsPerMinute != 120 ||
		spec.Limits.TokensPerMinute == nil || *spec.Limits.TokensPerMinute != 50000 ||
		spec.Budget == nil || spec.Budget.Tokens == nil || *spec.Budget.Tokens != 2000000 || spec.Budget.Period != gatewayv1alpha1.BudgetMonth ||
		spec.TTL == nil || spec.TTL.String() != "12h" || spec.ExpiresAt != nil {
		t.Errorf("stored: models %v, limits %+v, budget %+v, ttl %v, expiresAt %v", spec.Models, spec.Limits, spec.Budget, spec.TTL, spec.ExpiresAt)
	}
	// The gateway serves the key its model and refuses any other.
	testenv.Eventually(t, 10*time.Second, func() error {
		if status, body := testenv.PostChat(t, s.URL, key, `{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}`); status != http.StatusOK {
			return fmt.Errorf("the key's own model: %d %s", status, body)
		}
		return nil
	})
	if status, body := testenv.PostChat(t, s.URL, key, `{"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "Hello"}]}`); status != http.StatusForbidden || !strings.Contains(body, "model_not_allowed") {
		t.Errorf("a model outside the key's list (but within the namespace's): %d %s, want 403 model_not_allowed", status, body)
	}

	// The guardrails tighten while the dialog is open: the dialog's check
	// passes, the API server refuses, and the dialog shows its words.
	openDialog()
	tightenGuardrails(t, g.ConfigMap, s.Namespace)
	webtest.Do(t, ctx, "creating a key within the guardrails the dialog knows",
		chromedp.SendKeys(chromedp.ID("create-rpm"), "500"),
		chromedp.Click(chromedp.ID("create-submit")),
		chromedp.WaitVisible(chromedp.ID("create-rpm-error")),
	)
	// At the field it is about, in the API server's words, whole.
	want := "The key could not be created: spec.limits.requestsPerMinute must be at most 100, as set by " + setBy + "."
	if got := text("create-rpm-error"); got != want {
		t.Errorf("the dialog says %q, want the API server's refusal %q", got, want)
	}
	if got := webtest.Eval[string](t, ctx, `document.activeElement.id + " " + document.activeElement.getAttribute("aria-invalid")`); got != "create-rpm true" {
		t.Errorf("focus is on %q, want the requests per minute (create-rpm true)", got)
	}
	// Readable: wrapped, and in view inside the dialog.
	if !webtest.Eval[bool](t, ctx, `(() => {
		const e = document.getElementById("create-rpm-error"), d = document.getElementById("create-dialog");
		const r = e.getBoundingClientRect(), b = d.getBoundingClientRect();
		return e.scrollWidth <= e.clientWidth && r.left >= b.left && r.right <= b.right && r.top >= b.top && r.bottom <= b.bottom;
	})()`) {
		t.Error("the refusal is cut off or out of view in the dialog")
	}
	if !webtest.Eval[bool](t, ctx, `document.getElementById("create-error").hidden`) {
		t.Errorf("the refusal is shown twice: also in the alert %q", text("create-error"))
	}
	webtest.Screenshot(t, ctx, "console-create-refused")
	if err := env.Client.List(context.Background(), &stored, client.InNamespace(s.Namespace)); err != nil {
		t.Fatal(err)
	}
	if len(stored.Items) != 1 {
		t.Errorf("%d keys, want only the one created within the guardrails", len(stored.Items))
	}
}

// The curl example in "Save your key" shows the whole command, the key
// included, without scrolling sideways: it wraps, on a phone too.
func TestBrowserRevealShowsTheWholeCurlExample(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	for _, width := range []int64{1280, 360} {
		webtest.Do(t, ctx, fmt.Sprintf("a %dpx wide window", width), chromedp.EmulateViewport(width, 800), chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
		key := createInPage(t, ctx, fmt.Sprintf("w%d", width), "")
		fits := webtest.Eval[string](t, ctx, `(() => {
			const pre = document.getElementById("reveal-curl").closest("pre"), d = document.getElementById("create-dialog");
			const p = pre.getBoundingClientRect(), b = d.getBoundingClientRect();
			if (pre.scrollWidth > pre.clientWidth) return "the example scrolls sideways: " + pre.scrollWidth + "px of text in " + pre.clientWidth + "px";
			if (p.left < b.left || p.right > b.right) return "the example reaches outside the dialog";
			// Every line box of the text lies inside the block.
			const r = document.createRange();
			r.selectNodeContents(document.getElementById("reveal-curl"));
			for (const line of r.getClientRects()) {
				if (line.right > p.right + 0.5 || line.left < p.left - 0.5) return "a line runs from " + line.left + " to " + line.right + ", outside " + p.left + "-" + p.right;
			}
			return "";
		})()`)
		if fits != "" {
			t.Errorf("at %dpx: %s", width, fits)
		}
		if curl := webtest.Eval[string](t, ctx, `document.getElementById("reveal-curl").textContent`); !strings.Contains(curl, "Bearer "+key) {
			t.Errorf("at %dpx the example does not hold the key", width)
		}
		webtest.Screenshot(t, ctx, fmt.Sprintf("console-reveal-curl-%d", width))
		clickDone(t, ctx)
	}
}

// Every time the console shows reads the same way: the date, then how
// long ago or until in the CLI's words, the exact time in a tooltip. The
// rotate dialog says when the old key stops in the same two parts.
func TestBrowserDatesInOneFormat(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	createInPage(t, ctx, "laptop", "30")
	clickDone(t, ctx)
	webtest.Do(t, ctx, "rotating with a day's grace",
		chromedp.Click(chromedp.CSS(`button[aria-label="Actions for laptop"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.Click(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.WaitVisible(chromedp.ID("rotate-grace")),
		chromedp.Click(chromedp.ID("rotate-submit")),
		chromedp.WaitVisible(chromedp.ID("rotate-key")),
	)
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("rotate-key").value`), true)
	old := webtest.Eval[string](t, ctx, `document.getElementById("rotate-old").textContent`)
	if !regexp.MustCompile(`keeps working until [A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4}, [0-9]{1,2}:[0-9]{2} [AP]M \S+ \(in 1 day\)\.$`).MatchString(old) {
		t.Errorf("the rotate dialog says %q, want the date and time, then (in 1 day)", old)
	}
	webtest.Do(t, ctx, "closing the dialog", chromedp.Click(chromedp.ID("rotate-done")))
	webtest.WaitJS(t, ctx, "the row shows the old key's grace period", `document.querySelector("#keys .key-grace") !== null`)
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	times := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#keys time"), el => {
		const rel = el.nextElementSibling && el.nextElementSibling.classList.contains("when-rel") ? el.nextElementSibling.textContent : "(none)";
		return [el.closest("td[data-label], .key-meta").className || el.closest("td").dataset.label, el.textContent, rel, el.title].join(" | ");
	})`)
	// Created, the old key's end and the expiry at least; last uses once
	// the gateway has written them.
	if len(times) < 3 {
		t.Errorf("times shown: %q, want created, the old key's end and the expiry", times)
	}
	format := regexp.MustCompile(`^.* \| [A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4} \| \((just now|in [0-9a-z ]+|[0-9a-z ]+ ago)\) \| [A-Z][a-z]{2} [0-9]{1,2}, [0-9]{4}, [0-9]{1,2}:[0-9]{2} [AP]M \S+$`)
	for _, tm := range times {
		if !format.MatchString(tm) {
			t.Errorf("time %q is not \"date (relative)\" with the exact time in its tooltip", tm)
		}
	}
	for _, want := range []string{"(in 1 month)", "(in 1 day)", "(just now)"} {
		if !strings.Contains(strings.Join(times, "\n"), want) {
			t.Errorf("no time says %s: %q", want, times)
		}
	}
	webtest.Screenshot(t, ctx, "console-dates")
}

// Where every key must expire and no default lifetime fills in, the dialog
// does not offer "No expiry": it starts from the longest preset.
func TestBrowserCreateWhereEveryKeyMustExpire(t *testing.T) {
	s := startStack(t, true, func(o *server.Options) { o.Console.Auth = console.AuthDev })
	env.BindGuardrails(t, s.Namespace, map[string]string{"requireExpiry": "true"})
	testenv.Eventually(t, 15*time.Second, func() error {
		k := &gatewayv1alpha1.APIKey{}
		k.Namespace, k.GenerateName = s.Namespace, "probe-"
		if err := env.Client.Create(context.Background(), k, client.DryRunAll); err == nil {
			return errors.New("a key without an expiry is still accepted")
		}
		return nil
	})
	ctx := webtest.Browser(t)
	watch := webtest.WatchPage(ctx)
	defer watch.Check(t)
	webtest.Do(t, ctx, "opening the create dialog",
		chromedp.Navigate(s.URL+"/api-keys"), chromedp.WaitVisible(chromedp.ID("keys")),
		chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
		chromedp.WaitVisible(chromedp.ID("create-name")))
	webtest.WaitJS(t, ctx, "the dialog shows the guardrails", `!document.getElementById("create-expiry-rule").hidden`)
	if got := webtest.Eval[string](t, ctx, `document.getElementById("create-expiry-rule").textContent`); got != "Guardrail: every key must expire." {
		t.Errorf("the expiry's guardrail says %q", got)
	}
	if got := webtest.Eval[string](t, ctx, `(() => { const s = document.getElementById("create-expiry"); return s.value + " " + s.options[0].disabled + " " + s.options[0].textContent; })()`); got != "90 true No expiry (not allowed here)" {
		t.Errorf("the expiry choice: %q, want 90 days chosen and No expiry disabled", got)
	}
	webtest.Do(t, ctx, "creating", chromedp.SendKeys(chromedp.ID("create-name"), "ci"), chromedp.Click(chromedp.ID("create-submit")), chromedp.WaitVisible(chromedp.ID("reveal-key")))
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`), true)
	clickDone(t, ctx)
	webtest.WaitJS(t, ctx, "the new row is in the table", `document.querySelector("#keys tbody tr") !== null`)
	name := webtest.Eval[string](t, ctx, `document.querySelector("#keys tbody tr").dataset.name`)
	if ttl := storedKey(t, s.Namespace, name).Spec.TTL; ttl == nil || ttl.String() != "90d" {
		t.Errorf("stored ttl %v, want 90d", ttl)
	}
}
