package commands

import (
	"bytes"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/testenv"
)

// TestDevExamples runs every example of the docs pages, of the README's
// tour and the policy example of docs/limits-and-budgets.md, of `kubectl apikey ... --help` and of the
// console's policy hints against `codevector dev` with no provider
// credentials: each must work as written, through the stand-in providers.
// The examples are read from the served pages, the README and the help
// text, never copied here, so an example that drifts fails this test, and
// so does a new kind of example the test does not know how to run.
func TestDevExamples(t *testing.T) {
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "dev")
	listen := testenv.FreeAddr(t)
	base := "http://" + listen
	kubeconfig := filepath.Join(state, "kubeconfig")
	d := startDev(t, listen, state)
	defer func() {
		pids := devmode.ProcessesOf(state)
		d.stop(t)
		assertGone(t, state, pids)
	}()

	// sh runs a script with bash as a user of dev mode would, in dir.
	sh := func(t *testing.T, dir, stdin, script string, env ...string) (string, string, error) {
		t.Helper()
		cmd := exec.Command("bash", "-c", script)
		cmd.Dir = dir
		cmd.Env = append(append(devEnv(t), "KUBECONFIG="+kubeconfig), env...)
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}
	// newKey makes a key with no policy, as the docs' reader has one.
	newKey := func(t *testing.T, name string, flags ...string) string {
		t.Helper()
		stdout, stderr, err := cli(t, kubeconfig, "", "kubectl-apikey", append([]string{"create", name}, flags...)...)
		if err != nil || !testenv.KeyLine.MatchString(stdout) {
			t.Fatalf("kubectl apikey create %s %v: %v\n%s", name, flags, err, stderr)
		}
		return strings.TrimSpace(stdout)
	}
	// cleanUp deletes every key of the dev user, so the next example may
	// reuse a name.
	cleanUp := func(t *testing.T) {
		t.Helper()
		if _, stderr, err := cli(t, kubeconfig, "", "/usr/bin/kubectl", "delete", "apikeys", "--all", "--wait"); err != nil {
			t.Fatalf("kubectl delete apikeys --all: %v\n%s", err, stderr)
		}
	}

	// The models the providers list, to a key without a policy.
	var models []string
	for _, p := range []string{"openai", "anthropic"} {
		models = append(models, listModels(t, base+"/gateway/"+p+"/v1/models", newKey(t, "models-"+p))...)
	}
	cleanUp(t)

	t.Run("docs", func(t *testing.T) {
		defer cleanUp(t)
		key := newKey(t, "docs-reader")
		pages, err := filepath.Glob(filepath.Join(root, "gateway/docs/pages/*.html"))
		if err != nil {
			t.Fatal(err)
		}
		ran := 0
		for _, file := range pages {
			slug := strings.TrimSuffix(filepath.Base(file), ".html")
			if slug == "frame" || slug == "not-found" {
				continue
			}
			for _, ex := range codeBlocks(t, base+"/docs/"+slug) {
				ran++
				runDocsExample(t, base, slug, ex, key, func(script string) (string, string, error) {
					return sh(t, t.TempDir(), "", script, "CODEVECTOR_API_KEY="+key)
				})
			}
		}
		if ran < 6 {
			t.Errorf("found %d examples in the docs pages, want at least 6: has the page markup changed?", ran)
		}
	})

	t.Run("readme tour", func(t *testing.T) {
		defer cleanUp(t)
		readme, err := os.ReadFile(filepath.Join(root, "README.md"))
		if err != nil {
			t.Fatal(err)
		}
		tour := string(readme)
		start := strings.Index(tour, "## Five-minute tour")
		end := -1
		if start >= 0 {
			if next := strings.Index(tour[start+1:], "\n## "); next >= 0 {
				end = start + 1 + next
			}
		}
		if start < 0 || end < start {
			t.Fatal("README.md has no Five-minute tour section followed by another")
		}
		// The tour runs in a checkout: .codevector/dev and bin/ as make
		// dev and make build leave them.
		dir := t.TempDir()
		if err := os.MkdirAll(filepath.Join(dir, ".codevector"), 0o755); err != nil {
			t.Fatal(err)
		}
		for link, to := range map[string]string{".codevector/dev": state, "bin": binaries(t)} {
			if err := os.Symlink(to, filepath.Join(dir, link)); err != nil {
				t.Fatal(err)
			}
		}
		// The blocks run one after the other as in one terminal: each
		// starts with the variables the ones before it set.
		saved := filepath.Join(dir, ".tour-vars")
		prelude := ""
		blocks := shellBlocks(tour[start:end])
		if len(blocks) < 4 {
			t.Fatalf("found %d sh blocks in the tour, want at least 4", len(blocks))
		}
		for i, b := range blocks {
			b = strings.ReplaceAll(b, "http://localhost:8080", base)
			if strings.TrimSpace(b) == "make dev" {
				continue // running already
			}
			// The block that revokes and then shows the 401: the gateway
			// sees the revocation a moment later, so its curl is retried.
			if before, after, ok := strings.Cut(b, "\ncurl "); ok && strings.Contains(before, "revoke") {
				if _, stderr, err := sh(t, dir, "yes\n", prelude+before); err != nil {
					t.Fatalf("tour block %d: %v\n%s", i+1, err, stderr)
				}
				testenv.Eventually(t, 10*time.Second, func() error {
					out, stderr, err := sh(t, dir, "", prelude+"curl "+after)
					if err != nil || !strings.Contains(out, "401 Unauthorized") || !strings.Contains(out, `"code":"invalid_api_key"`) {
						return &exampleError{"the tour's revoked key", out + stderr}
					}
					return nil
				})
				continue
			}
			out, stderr, err := sh(t, dir, "", prelude+b+"\n{ export -p; declare -p KEY 2>/dev/null; } > "+saved)
			if err != nil {
				t.Fatalf("tour block %d: %v\n%s", i+1, err, stderr)
			}
			prelude = "source " + saved + "\n"
			if strings.Contains(b, "curl ") && (!strings.Contains(out, `"content":"Echo: Hello"`) || strings.Contains(out, `"error"`)) {
				t.Errorf("tour block %d answered %s, want the stand-in's Echo: Hello", i+1, out)
			}
		}
	})

	t.Run("limits page policy", func(t *testing.T) {
		defer cleanUp(t)
		page, err := os.ReadFile(filepath.Join(root, "docs", "limits-and-budgets.md"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile("`kubectl apikey create NAME ([^`]+)`").FindSubmatch(page)
		if m == nil {
			t.Fatal("docs/limits-and-budgets.md has no `kubectl apikey create NAME ...` example")
		}
		line := "kubectl apikey create policy-example " + strings.Join(strings.Fields(string(m[1])), " ")
		runCLIExample(t, base, models, line, sh)
	})

	t.Run("cli help", func(t *testing.T) {
		help, _, err := cli(t, kubeconfig, "", "kubectl-apikey", "--help")
		if err != nil {
			t.Fatal(err)
		}
		_, commands, _ := strings.Cut(help, "Available Commands:\n")
		commands, _, _ = strings.Cut(commands, "\n\n")
		ran := 0
		for _, l := range strings.Split(commands, "\n") {
			sub := strings.Fields(l)[0]
			if sub == "help" || sub == "completion" {
				continue
			}
			out, _, err := cli(t, kubeconfig, "", "kubectl-apikey", sub, "--help")
			if err != nil {
				t.Fatal(err)
			}
			_, examples, ok := strings.Cut(out, "Examples:\n")
			if !ok {
				continue
			}
			examples, _, _ = strings.Cut(examples, "\n\n")
			for _, ex := range strings.Split(examples, "\n") {
				ran++
				t.Run(sub, func(t *testing.T) {
					defer cleanUp(t)
					runCLIExample(t, base, models, strings.TrimSpace(ex), sh)
				})
			}
		}
		if ran < 5 {
			t.Errorf("found %d examples in the help, want at least 5", ran)
		}
	})

	t.Run("console policy hints", func(t *testing.T) {
		page, err := os.ReadFile(filepath.Join(root, "gateway/console/templates/api_keys.html"))
		if err != nil {
			t.Fatal(err)
		}
		// The hints of the create and Edit limits dialogs' fields, which
		// one template writes for both ({{.}} is the dialog's id).
		hint := func(id string) []string {
			m := regexp.MustCompile(`(?s)id="` + regexp.QuoteMeta(id) + `">(.*?)</p>`).FindSubmatch(page)
			if m == nil {
				t.Fatalf("no #%s in the console's page", id)
			}
			var out []string
			for _, c := range regexp.MustCompile(`<code>([^<]+)</code>`).FindAllSubmatch(m[1], -1) {
				out = append(out, html.UnescapeString(string(c[1])))
			}
			return out
		}
		globs := strings.ReplaceAll(strings.Join(hint("{{.}}-models-hint"), ","), " ", "")
		for _, budget := range hint("{{.}}-budget-hint") {
			t.Run(budget, func(t *testing.T) {
				defer cleanUp(t)
				runCLIExample(t, base, models, "kubectl apikey create console-hint --models '"+globs+"' --budget "+budget, sh)
			})
		}
	})

	t.Run("issue 25", func(t *testing.T) {
		defer cleanUp(t)
		// The smallest dollar budget still serves the docs' model: its
		// answer is bounded to what the budget can pay for.
		runCLIExample(t, base, models, "kubectl apikey create x --budget 1usd/month", sh)
		// A key for gpt-4o* lists the stand-in's gpt-4o models.
		key := newKey(t, "gpt4o", "--models", "gpt-4o*")
		ids := listModels(t, base+"/gateway/openai/v1/models", key)
		if strings.Join(ids, ",") != "gpt-4o,gpt-4o-mini" {
			t.Errorf("GET /gateway/openai/v1/models with a gpt-4o* key lists %v, want gpt-4o and gpt-4o-mini", ids)
		}
		key = newKey(t, "claude", "--models", "claude-sonnet-*")
		ids = listModels(t, base+"/gateway/anthropic/v1/models", key)
		if len(ids) == 0 || !strings.HasPrefix(ids[0], "claude-sonnet-") {
			t.Errorf("GET /gateway/anthropic/v1/models with a claude-sonnet-* key lists %v", ids)
		}
	})
}

type exampleError struct{ what, got string }

func (e *exampleError) Error() string { return e.what + " answered:\n" + e.got }

// codeBlocks are the <pre class="code"> blocks of a served docs page, as
// text a reader copies.
func codeBlocks(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	var out []string
	tag := regexp.MustCompile(`<[^>]+>`)
	for _, m := range regexp.MustCompile(`(?s)<pre class="code"><code>(.*?)</code></pre>`).FindAllSubmatch(page, -1) {
		out = append(out, html.UnescapeString(tag.ReplaceAllString(string(m[1]), "")))
	}
	return out
}

// shellBlocks are the ```sh blocks of a Markdown text.
func shellBlocks(md string) []string {
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(md, -1) {
		out = append(out, m[1])
	}
	return out
}

// runDocsExample runs one code block of a docs page, as its reader would.
func runDocsExample(t *testing.T, base, page, ex, key string, sh func(string) (string, string, error)) {
	t.Helper()
	first, _, _ := strings.Cut(ex, "\n")
	fail := func(format string, a ...any) {
		t.Helper()
		t.Errorf("docs page %s, example\n%s\n: "+format, append([]any{page, ex}, a...)...)
	}
	switch {
	case strings.HasPrefix(first, "export CODEVECTOR_API_KEY="):
		// The placeholder for the reader's key: the other examples run
		// with it set.
	case strings.HasPrefix(first, "curl "):
		out, stderr, err := sh(ex)
		if err != nil || strings.Contains(out, `"error"`) || !strings.Contains(out, "Echo: Hello") {
			fail("%v: %s%s, want the stand-in's Echo: Hello", err, out, stderr)
		}
	case strings.HasPrefix(first, "from openai import OpenAI"):
		// What the OpenAI SDK sends: POST {base_url}/chat/completions.
		req := sdkRequest(t, ex, "/chat/completions", map[string]string{"Authorization": "Bearer " + key})
		var answer struct {
			Choices []struct{ Message struct{ Content string } }
		}
		if code, body := send(t, req, &answer); code != http.StatusOK || len(answer.Choices) != 1 || answer.Choices[0].Message.Content != "Echo: Hello" {
			fail("%d %s", code, body)
		}
	case strings.HasPrefix(first, "from anthropic import Anthropic"):
		// What the Anthropic SDK sends: POST {base_url}/v1/messages with
		// the key in x-api-key.
		req := sdkRequest(t, ex, "/v1/messages", map[string]string{"x-api-key": key, "anthropic-version": "2023-06-01"})
		var answer struct {
			Content []struct{ Type, Text string }
			Usage   struct{ InputTokens, OutputTokens int64 }
		}
		if code, body := send(t, req, &answer); code != http.StatusOK || len(answer.Content) != 1 || answer.Content[0].Text != "Echo: Hello" {
			fail("%d %s", code, body)
		}
	case strings.HasPrefix(first, `{"error"`):
		// The shape of a refusal: a request with a wrong key gets it.
		var want, got map[string]map[string]any
		if err := json.Unmarshal([]byte(ex), &want); err != nil {
			fail("not JSON: %v", err)
			return
		}
		code, body := testenv.DocsChat(t, base, "cvk_wrong")
		if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusUnauthorized {
			fail("a wrong key got %d %s", code, body)
			return
		}
		for k := range want["error"] {
			if _, ok := got["error"][k]; !ok {
				fail("a wrong key got %s, without error.%s", body, k)
			}
		}
		if got["error"]["code"] != want["error"]["code"] || got["error"]["type"] != want["error"]["type"] {
			fail("a wrong key got %s", body)
		}
	case strings.HasPrefix(first, "kubectl "):
		out, stderr, err := sh(ex)
		if err != nil {
			fail("%v\n%s", err, stderr)
			return
		}
		if testenv.KeyLine.MatchString(out) {
			if code, body := testenv.DocsChat(t, base, strings.TrimSpace(out)); code != http.StatusOK {
				fail("the key it printed got %d %s", code, body)
			}
		}
	default:
		fail("this test does not know how to run it: teach TestDevExamples")
	}
}

// sdkRequest is the request an SDK snippet makes: its base_url with the
// SDK's path, its model (else the docs' model) and messages (else
// "Hello"), with max_tokens as Anthropic's SDK requires.
func sdkRequest(t *testing.T, ex, route string, headers map[string]string) *http.Request {
	t.Helper()
	m := regexp.MustCompile(`base_url="([^"]+)"`).FindStringSubmatch(ex)
	if m == nil || !strings.Contains(ex, `os.environ["CODEVECTOR_API_KEY"]`) {
		t.Fatalf("SDK example without base_url or the key's variable:\n%s", ex)
	}
	body := map[string]any{"model": "claude-sonnet-4-6", "max_tokens": 256,
		"messages": []any{map[string]any{"role": "user", "content": "Hello"}}}
	if mm := regexp.MustCompile(`model="([^"]+)"`).FindStringSubmatch(ex); mm != nil {
		body["model"] = mm[1]
	}
	if mm := regexp.MustCompile(`messages=(\[.*\]),`).FindStringSubmatch(ex); mm != nil {
		var msgs []any
		if err := json.Unmarshal([]byte(mm[1]), &msgs); err != nil {
			t.Fatalf("messages of the SDK example are not JSON: %v", err)
		}
		body["messages"] = msgs
		delete(body, "max_tokens")
	}
	b, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, m[1]+route, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	return req
}

func send(t *testing.T, req *http.Request, into any) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, into)
	return resp.StatusCode, string(b)
}

// runCLIExample runs one `kubectl apikey` example line; a key it creates
// (on stdout or in $KEY) must then answer a chat completion for a model
// its --models allows, through the route the docs show.
func runCLIExample(t *testing.T, base string, models []string, line string, sh func(*testing.T, string, string, string, ...string) (string, string, error)) {
	t.Helper()
	out, stderr, err := sh(t, t.TempDir(), "", line+"\nif [ -n \"${KEY-}\" ]; then printf '%s\\n' \"$KEY\"; fi")
	if err != nil {
		t.Fatalf("%s: %v\n%s", line, err, stderr)
	}
	if !testenv.KeyLine.MatchString(out) {
		return // not a create
	}
	key := strings.TrimSpace(out)
	model := "claude-sonnet-4-6" // the docs' model
	if m := regexp.MustCompile(`--models[ =]'?([^' ]+)`).FindStringSubmatch(line); m != nil {
		model = ""
		for _, glob := range strings.Split(m[1], ",") {
			if model = matchingModel(models, glob); model == "" {
				t.Fatalf("%s: none of the models the providers list (%v) matches %q", line, models, glob)
			}
			checkChat(t, base, line, key, model)
		}
		return
	}
	checkChat(t, base, line, key, model)
}

func checkChat(t *testing.T, base, line, key, model string) {
	t.Helper()
	body := `{"model": "` + model + `", "messages": [{"role": "user", "content": "Hello"}]}`
	if code, answer := testenv.PostChat(t, base, key, body); code != http.StatusOK || !strings.Contains(answer, "Echo: Hello") {
		t.Errorf("%s: the key's request for %s got %d %s, want 200", line, model, code, answer)
	}
}

// matchingModel is the first of models that glob matches.
func matchingModel(models []string, glob string) string {
	for _, m := range models {
		if ok, _ := path.Match(glob, m); ok {
			return m
		}
	}
	return ""
}

func listModels(t *testing.T, url, key string) []string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	var list struct{ Data []struct{ ID string } }
	if code, body := send(t, req, &list); code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", url, code, body)
	}
	var ids []string
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	return ids
}
