// Package webtest runs the console and docs tests in a real browser:
// Debian's headless chromium, driven by chromedp. It never skips: a machine
// without chromium fails the test and says how to install it (.ci/run does).
package webtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// chromiumPaths are where Debian and other distributions put the browser.
var chromiumPaths = []string{"chromium", "/usr/bin/chromium", "chromium-browser", "google-chrome", "headless-shell"}

func findChromium() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range chromiumPaths {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("chromium not found (looked for %s): install it with 'apt-get install -y chromium' (.ci/run does), or set CHROMIUM", strings.Join(chromiumPaths, ", "))
}

// Browser starts a headless chromium with a fresh profile for the test and
// returns the context of its first tab. Everything stops when the test ends.
func Browser(t testing.TB) context.Context {
	t.Helper()
	path, err := findChromium()
	if err != nil {
		t.Fatal(err)
	}
	profile, err := os.MkdirTemp("", "codevector-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
		chromedp.WindowSize(1280, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		// Chromium's helpers can write to the profile for a moment after the
		// browser exits, so RemoveAll may need a few tries.
		for range 50 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting chromium (%s): %v", path, err)
	}
	return ctx
}

// Watch records what a page must never do: throw, log an error (a CSP
// violation is one), or open a JavaScript dialog (alert, confirm).
type Watch struct {
	mu       sync.Mutex
	problems []string
	expected []string
}

// Expect tells the watch that problems containing substr are part of the
// test (say, the browser logging a 409 that the page then explains).
func (w *Watch) Expect(substr string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.expected = append(w.expected, substr)
}

// WatchPage starts watching the tab of ctx. Dialogs are dismissed at once so
// a page cannot hang the test. Call Check at the end.
func WatchPage(ctx context.Context) *Watch {
	w := &Watch{}
	messages := chromedp.Console(ctx)
	dialogs := chromedp.Events(ctx, page.JavascriptDialogOpening)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == "error" || m.Type == "assert" {
				w.add(fmt.Sprintf("console %s: %s (%s:%d)", m.Type, m.Text, m.URL, m.Line+1))
			}
		}
	}()
	go func() {
		for ev, err := range dialogs {
			if err != nil {
				return
			}
			w.add(fmt.Sprintf("JavaScript %s dialog opened: %q", ev.Type, ev.Message))
			_, _ = chromedp.Call(ctx, page.HandleJavaScriptDialog, page.HandleJavaScriptDialogParams{Accept: false})
		}
	}()
	return w
}

func (w *Watch) add(p string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.problems = append(w.problems, p)
}

// Problems returns what went wrong so far, apart from what was expected.
func (w *Watch) Problems() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
next:
	for _, p := range w.problems {
		for _, e := range w.expected {
			if strings.Contains(p, e) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out
}

// Check fails the test for every problem seen.
func (w *Watch) Check(t testing.TB) {
	t.Helper()
	for _, p := range w.Problems() {
		t.Errorf("page problem: %s", p)
	}
}

// Screenshot saves a full-page PNG into $CODEVECTOR_SCREENSHOTS when that
// is set, for a person to look at during development; otherwise nothing.
func Screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("CODEVECTOR_SCREENSHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot %s: %v", name, err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Errorf("screenshot %s: %v", name, err)
	}
}

// Eval evaluates a JavaScript expression in the tab and fails the test on
// an error.
func Eval[T any](t testing.TB, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// TextOf is the text of the element with id, white space folded as a
// reader sees it.
func TextOf(t testing.TB, ctx context.Context, id string) string {
	t.Helper()
	return Eval[string](t, ctx, `document.getElementById("`+id+`").textContent.trim().replace(/\s+/g, " ")`)
}

// ExpectTexts fails the test for each element id in want whose text
// (TextOf) is not the one given.
func ExpectTexts(t testing.TB, ctx context.Context, want map[string]string) {
	t.Helper()
	for id, w := range want {
		if got := TextOf(t, ctx, id); got != w {
			t.Errorf("#%s says %q, want %q", id, got, w)
		}
	}
}

// Do runs steps and fails the test with what it was doing on an error.
func Do(t testing.TB, ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, steps...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// WaitJS polls a JavaScript predicate until it is true, or fails the test.
func WaitJS(t testing.TB, ctx context.Context, what, predicate string) {
	t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := chromedp.Run(tctx, chromedp.Poll[bool](predicate, chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("waiting until %s (%s): %v", what, predicate, err)
	}
}
