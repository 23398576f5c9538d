package console_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/web/webtest"
	"github.com/codevector/codevector/internal/testenv"
)

// The owner rotates a key from the row menu: a grace-period dialog, the
// new key shown once, and the row then says how long the old key works.
func TestBrowserRotateKey(t *testing.T) {
	s, ctx, watch := devStack(t)
	defer watch.Check(t)
	webtest.Eval[bool](t, ctx, `window.stillTheSamePage = true`)
	old := createInPage(t, ctx, "laptop", "")
	clickDone(t, ctx)

	webtest.Do(t, ctx, "choosing Rotate in the row menu",
		chromedp.Click(chromedp.CSS(`button[aria-label="Actions for laptop"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.Click(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.WaitVisible(chromedp.ID("rotate-grace")),
	)
	if title := webtest.Eval[string](t, ctx, `document.getElementById("rotate-title").textContent`); title != "Rotate laptop?" {
		t.Errorf("rotate dialog title %q", title)
	}
	if grace := webtest.Eval[string](t, ctx, `document.getElementById("rotate-grace").value`); grace != "24h" {
		t.Errorf("default grace period %q, want 24h", grace)
	}
	options := webtest.Eval[[]string](t, ctx, `Array.from(document.querySelectorAll("#rotate-grace option"), o => o.textContent)`)
	if len(options) != 4 || options[0] != "1 hour" || options[1] != "24 hours" || options[2] != "7 days" || !strings.Contains(options[3], "immediately") {
		t.Errorf("grace options %q", options)
	}
	webtest.Screenshot(t, ctx, "console-rotate-dialog")
	webtest.Do(t, ctx, "rotating",
		chromedp.Click(chromedp.ID("rotate-submit")),
		chromedp.WaitVisible(chromedp.ID("rotate-key")),
	)
	key := webtest.Eval[string](t, ctx, `document.getElementById("rotate-key").value`)
	if !keyFormat.MatchString(key) || key == old {
		t.Fatalf("the dialog shows %q..., not a new key", key[:min(len(key), 12)])
	}
	handedOut.Store(key, true)
	if warning := webtest.Eval[string](t, ctx, `document.querySelector("#rotate-reveal-step .alert-warning").textContent`); !strings.Contains(warning, "only time the key is shown") {
		t.Errorf("warning %q", warning)
	}
	if line := webtest.Eval[string](t, ctx, `document.getElementById("rotate-old").textContent`); !strings.Contains(line, old[:12]) || !strings.Contains(line, "keeps working until") {
		t.Errorf("old-key line %q", line)
	}
	webtest.WaitJS(t, ctx, "the row shows the old key's grace period", `(document.querySelector("#keys .key-grace") || {}).textContent !== undefined`)
	webtest.Screenshot(t, ctx, "console-rotate-reveal")
	webtest.Do(t, ctx, "closing the dialog", chromedp.Click(chromedp.ID("rotate-done")))
	webtest.WaitJS(t, ctx, "the dialog is closed", `!document.getElementById("rotate-dialog").open`)

	html := webtest.Eval[string](t, ctx, `document.documentElement.outerHTML`)
	if strings.Contains(html, key[12:44]) || strings.Contains(html, old[12:44]) {
		t.Fatal("after Done the page still holds a key")
	}
	if !webtest.Eval[bool](t, ctx, `window.stillTheSamePage === true`) {
		t.Error("the page reloaded")
	}
	if got := webtest.Eval[string](t, ctx, `document.querySelector('#keys tbody tr .prefix').textContent`); got != key[:12]+"…" {
		t.Errorf("row prefix %q, want the new %s…", got, key[:12])
	}
	grace := webtest.Eval[string](t, ctx, `document.querySelector("#keys .key-grace").textContent`)
	if !strings.Contains(grace, old[:12]) || !strings.Contains(grace, "still works until") || !strings.Contains(grace, "last used") {
		t.Errorf("grace line %q", grace)
	}
	if status := s.chat(t, key); status != http.StatusOK {
		t.Errorf("the new key: %d", status)
	}
	if status := s.chat(t, old); status != http.StatusOK {
		t.Errorf("the old key during its grace period: %d", status)
	}
	webtest.Screenshot(t, ctx, "console-rotated")
}

// A key that expires within 7 days has a badge that says so in words.
func TestBrowserExpirySoonBadge(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	webtest.Do(t, ctx, "creating a key that expires in 3 days",
		chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
		chromedp.WaitVisible(chromedp.ID("create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "short"),
	)
	webtest.Eval[bool](t, ctx, `(() => {
		const s = document.getElementById("create-expiry");
		s.value = "custom";
		s.dispatchEvent(new Event("change", { bubbles: true }));
		document.getElementById("create-expires").value = "3d";
		return true;
	})()`)
	webtest.Do(t, ctx, "creating", chromedp.Click(chromedp.ID("create-submit")), chromedp.WaitVisible(chromedp.ID("reveal-key")))
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`), true)
	clickDone(t, ctx)
	webtest.WaitJS(t, ctx, "the row has an expiry badge", `document.querySelector("#keys .expiry-badge") !== null`)
	if got := webtest.Eval[string](t, ctx, `document.querySelector("#keys .expiry-badge").textContent`); got != "Expires in 3 days" {
		t.Errorf("badge %q, want \"Expires in 3 days\"", got)
	}
	if title := webtest.Eval[string](t, ctx, `document.querySelector("#keys .expiry-badge").title`); !strings.HasPrefix(title, "Expires ") {
		t.Errorf("badge title %q", title)
	}
	webtest.Screenshot(t, ctx, "console-expiry-badge")
}

// The "Key created" toast goes when the next dialog opens: it must not
// stay on screen while another key is rotated.
func TestBrowserToastDoesNotOutliveItsMoment(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	createInPage(t, ctx, "laptop", "")
	clickDone(t, ctx)
	toast := `(() => { const el = document.getElementById("toast"); return el.hidden ? "(hidden)" : el.textContent; })()`
	// The toast comes with the dialog's close event, a task after Done.
	webtest.WaitJS(t, ctx, "the toast says the key was created", toast+` === "Key created. Only its prefix is kept."`)
	// Quickly, as a person who rotates right away: the toast lasts 3.5 s.
	webtest.Do(t, ctx, "choosing Rotate in the row menu",
		chromedp.Click(chromedp.CSS(`button[aria-label="Actions for laptop"]`)),
		chromedp.WaitVisible(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.Click(chromedp.CSS(`[role="menu"] [data-rotate]`)),
		chromedp.WaitVisible(chromedp.ID("rotate-grace")),
	)
	if got := webtest.Eval[string](t, ctx, toast); got != "(hidden)" {
		t.Errorf("while rotating, the toast still says %q", got)
	}
	webtest.Do(t, ctx, "rotating", chromedp.Click(chromedp.ID("rotate-submit")), chromedp.WaitVisible(chromedp.ID("rotate-key")))
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("rotate-key").value`), true)
	if got := webtest.Eval[string](t, ctx, toast); got != "(hidden)" {
		t.Errorf("with the rotated key on screen, the toast says %q", got)
	}
	webtest.Do(t, ctx, "closing the dialog", chromedp.Click(chromedp.ID("rotate-done")))
	webtest.WaitJS(t, ctx, "the toast says the key was rotated", toast+` === "Key rotated. Only its prefix is kept."`)
}

// The "Expires in 2 days" badge stays inside its cell, clear of the row
// menu next to it, at every width the table has columns and as a card.
func TestBrowserExpiryBadgeClearsTheRowMenu(t *testing.T) {
	_, ctx, watch := devStack(t)
	defer watch.Check(t)
	webtest.Do(t, ctx, "creating a key that expires in 2 days",
		chromedp.Click(chromedp.CSS(".page-header [data-open-create]")),
		chromedp.WaitVisible(chromedp.ID("create-name")),
		chromedp.SendKeys(chromedp.ID("create-name"), "soon"),
		chromedp.SetValue(chromedp.ID("create-expiry"), "custom"),
	)
	webtest.Eval[bool](t, ctx, `document.getElementById("create-expiry").dispatchEvent(new Event("change")), true`)
	webtest.Do(t, ctx, "creating", chromedp.SendKeys(chromedp.ID("create-expires"), "2d"), chromedp.Click(chromedp.ID("create-submit")), chromedp.WaitVisible(chromedp.ID("reveal-key")))
	handedOut.Store(webtest.Eval[string](t, ctx, `document.getElementById("reveal-key").value`), true)
	clickDone(t, ctx)
	for _, width := range []int64{1280, 1000, 880, 360} {
		webtest.Do(t, ctx, fmt.Sprintf("a %dpx wide window", width), chromedp.EmulateViewport(width, 800), chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#keys .expiry-badge")))
		if got := webtest.Eval[string](t, ctx, `document.querySelector("#keys .expiry-badge").textContent`); !strings.HasPrefix(got, "Expires in ") {
			t.Errorf("badge %q", got)
		}
		clear := webtest.Eval[string](t, ctx, `(() => {
			const badge = document.querySelector("#keys .expiry-badge").getBoundingClientRect();
			const menu = document.querySelector('#keys [aria-haspopup="menu"]').getBoundingClientRect();
			const cell = document.querySelector("#keys .expiry-badge").closest("td").getBoundingClientRect();
			const gap = 2; // touching counts as overlapping
			if (badge.right + gap > menu.left && badge.left < menu.right + gap && badge.bottom + gap > menu.top && badge.top < menu.bottom + gap) {
				return "the badge (" + [badge.left, badge.top, badge.right, badge.bottom].map(Math.round) + ") touches the row menu (" + [menu.left, menu.top, menu.right, menu.bottom].map(Math.round) + ")";
			}
			if (badge.right > cell.right + 0.5 || badge.left < cell.left - 0.5) return "the badge runs out of its cell";
			return "";
		})()`)
		if clear != "" {
			t.Errorf("at %dpx: %s", width, clear)
		}
		webtest.Screenshot(t, ctx, fmt.Sprintf("console-expiry-badge-%d", width))
	}
}

// A key its owner made with kubectl in a team namespace is rotated from
// the console like a console key: the gateway may read no Secret there, so
// the console asks for the new key's reveal in the system namespace
// (spec.rotation.revealIn), where it is consumed. The new key is shown
// once and works; the old one works until its grace period ends.
func TestBrowserRotatesKubectlKeyInTeamNamespace(t *testing.T) {
	team := env.Namespace(t)
	s, ctx, watch := devStack(t, team)
	defer watch.Check(t)
	made := kubectlKey(t, team, "ci", console.DevUser, "CI")
	old, err := testenv.Reveal(context.Background(), env.Client, made)
	if err != nil {
		t.Fatalf("receiving the kubectl key: %v", err)
	}
	handedOut.Store(old.Reveal(), true)
	s.waitForStatus(t, old.Reveal(), http.StatusOK)
	webtest.Do(t, ctx, "reloading", chromedp.Reload(), chromedp.WaitVisible(chromedp.ID("keys")))
	row := rowSel(team, "ci")

	if items := openMenu(t, ctx, row); !slices.Equal(items, []string{"Rotate", "Revoke"}) {
		t.Fatalf("the kubectl key's menu offers %q, want Rotate and Revoke", items)
	}
	webtest.Do(t, ctx, "choosing Rotate, a grace period of 1 hour, and rotating",
		chromedp.Click(chromedp.CSS(row+" [data-rotate]")),
		chromedp.WaitVisible(chromedp.ID("rotate-grace")),
		chromedp.SetValue(chromedp.ID("rotate-grace"), "1h"),
		chromedp.Click(chromedp.ID("rotate-submit")),
		chromedp.WaitVisible(chromedp.ID("rotate-key")),
	)
	key := webtest.Eval[string](t, ctx, `document.getElementById("rotate-key").value`)
	if !keyFormat.MatchString(key) || key == old.Reveal() {
		t.Fatalf("the dialog shows %q..., not a new key", key[:min(len(key), 12)])
	}
	handedOut.Store(key, true)
	if line := webtest.Eval[string](t, ctx, `document.getElementById("rotate-old").textContent`); !strings.Contains(line, old.DisplayPrefix()) || !strings.Contains(line, "keeps working until") {
		t.Errorf("old-key line %q", line)
	}
	webtest.Do(t, ctx, "closing the dialog", chromedp.Click(chromedp.ID("rotate-done")))
	webtest.WaitJS(t, ctx, "the row shows the new prefix", fmt.Sprintf(`document.querySelector(%q).textContent === %q`, row+" .prefix", key[:12]+"…"))
	if html := webtest.Eval[string](t, ctx, `document.documentElement.outerHTML`); strings.Contains(html, key[12:44]) {
		t.Fatal("after Done the page still holds the key")
	}

	// Shown once: the reveal was consumed where the console reads, and no
	// copy waits next to the key.
	stored := storedOrNil(t, team, "ci")
	if rs := stored.Status.Reveal; rs == nil || rs.SecretNamespace != gatewayv1alpha1.DefaultSystemNamespace || rs.SecretName != gatewayv1alpha1.SystemRevealSecretName(string(stored.UID)) {
		t.Errorf("status.reveal %+v, want the reveal Secret %s in %s", rs, gatewayv1alpha1.SystemRevealSecretName(string(stored.UID)), gatewayv1alpha1.DefaultSystemNamespace)
	}
	for _, nn := range []types.NamespacedName{
		{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: gatewayv1alpha1.SystemRevealSecretName(string(stored.UID))},
		{Namespace: team, Name: gatewayv1alpha1.RevealSecretName("ci")},
	} {
		if err := env.Client.Get(context.Background(), nn, &corev1.Secret{}); !apierrors.IsNotFound(err) {
			t.Errorf("reveal Secret %s after the console showed the key: %v, want it gone", nn, err)
		}
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		if rs := storedOrNil(t, team, "ci").Status.Reveal; rs.State != gatewayv1alpha1.RevealConsumed {
			return fmt.Errorf("reveal state %s, want Consumed", rs.State)
		}
		return nil
	})

	s.waitForStatus(t, key, http.StatusOK)
	if status := s.chat(t, old.Reveal()); status != http.StatusOK {
		t.Errorf("the old key during its grace period: %d", status)
	}
	p := stored.Status.Previous
	if p == nil || p.Prefix != old.DisplayPrefix() || time.Until(p.ExpiresAt.Time) < 50*time.Minute || time.Until(p.ExpiresAt.Time) > time.Hour {
		t.Fatalf("status.previous %+v, want %s working for 1 hour", p, old.DisplayPrefix())
	}
	// The grace period ends (as if the hour had passed): the old key stops.
	base := stored.DeepCopy()
	stored.Status.Previous.ExpiresAt = metav1.NewTime(time.Now().Add(-time.Second))
	if err := env.Client.Status().Patch(context.Background(), stored, client.MergeFrom(base)); err != nil {
		t.Fatal(err)
	}
	s.waitForStatus(t, old.Reveal(), http.StatusUnauthorized)
	if status := s.chat(t, key); status != http.StatusOK {
		t.Errorf("the new key after the grace period: %d", status)
	}
}
