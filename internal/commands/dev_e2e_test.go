package commands

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/testenv"
)

// devProcess is one `codevector dev` run as a real process.
type devProcess struct {
	cmd    *exec.Cmd
	stdout testenv.LogBuffer
	stderr testenv.LogBuffer
	done   chan struct{}
	err    error // exit status, once done is closed
}

// startDev runs `codevector dev` on listen with state and waits until it
// has printed its banner (everything ready). Whatever happens, the test's
// cleanup stops it and anything it left running.
func startDev(t *testing.T, listen, state string) *devProcess {
	t.Helper()
	d := &devProcess{done: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(binaries(t), "codevector"), "dev", "--listen", listen, "--state-dir", state)
	d.cmd.Env = devEnv(t)
	d.cmd.Stdout, d.cmd.Stderr = &d.stdout, &d.stderr
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.err = d.cmd.Wait(); close(d.done) }()
	t.Cleanup(func() {
		select {
		case <-d.done:
		default:
			_ = d.cmd.Process.Kill()
			<-d.done
		}
		for _, pid := range devmode.ProcessesOf(state) {
			t.Errorf("process %d of %s survived the test; killing it", pid, state)
			_ = syscall.Kill(-pid, syscall.SIGKILL)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if t.Failed() {
			t.Logf("codevector dev stdout:\n%s\nstderr:\n%s", d.stdout.String(), d.stderr.String())
		}
	})
	deadline := time.After(3 * time.Minute)
	for !strings.Contains(d.stdout.String(), "Press Ctrl-C to stop") {
		select {
		case <-d.done:
			t.Fatalf("codevector dev exited before it was ready (%v):\n%s", d.err, d.stderr.String())
		case <-deadline:
			t.Fatalf("codevector dev not ready after 3 minutes:\n%s", d.stderr.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	return d
}

// stop sends SIGTERM (what Ctrl-C's SIGINT does too) and waits for a clean
// exit.
func (d *devProcess) stop(t *testing.T) {
	t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-d.done:
	case <-time.After(time.Minute):
		t.Fatal("codevector dev did not stop within a minute of SIGTERM")
	}
	if d.err != nil {
		t.Fatalf("codevector dev exited with %v:\n%s", d.err, d.stderr.String())
	}
}

// devEnv is the environment of the processes the test runs (see
// testenv.ProcessEnv), with the built binaries first on PATH.
func devEnv(t *testing.T) []string { return testenv.ProcessEnv(t, binaries(t)) }

// cli runs a command (the codevector binary, or kubectl) against the dev
// cluster's kubeconfig.
func cli(t *testing.T, kubeconfig, stdin string, name string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	if !filepath.IsAbs(name) {
		name = filepath.Join(binaries(t), name)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(devEnv(t), "KUBECONFIG="+kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// TestDevEndToEnd is the README's tour against `codevector dev` run as a
// process: the URLs answer, a key made with `kubectl apikey create` (the
// real kubectl finding the plugin on PATH) works through the echo stand-in
// with the docs' curl request, a revoked key gets 401; after a stop and a
// start the keys are still there and still behave; and neither etcd nor
// kube-apiserver outlives a stop, even after a SIGKILL.
func TestDevEndToEnd(t *testing.T) {
	state := filepath.Join(t.TempDir(), "dev")
	listen := testenv.FreeAddr(t)
	base := "http://" + listen
	kubeconfig := filepath.Join(state, "kubeconfig")

	d := startDev(t, listen, state)
	for _, want := range []string{
		base + "/api-keys", base + "/docs/", base + "/gateway/openai/v1",
		"export KUBECONFIG=" + kubeconfig, "DEV STAND-IN",
	} {
		if !strings.Contains(d.stdout.String(), want) {
			t.Errorf("start-up output lacks %q:\n%s", want, d.stdout.String())
		}
	}
	for _, path := range []string{"/healthz", "/readyz", "/api-keys", "/docs/"} {
		if code := get(t, base+path); code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, code)
		}
	}
	// Everyone is signed in, so a page that rebinds its own name to
	// 127.0.0.1 must not reach the console (DNS rebinding).
	rebound, _ := http.NewRequest(http.MethodGet, base+"/api/v1/apikeys", nil)
	rebound.Host = "attacker.example"
	if resp, err := http.DefaultClient.Do(rebound); err != nil {
		t.Error(err)
	} else if resp.Body.Close(); resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET /api/v1/apikeys with Host attacker.example = %d, want 421", resp.StatusCode)
	}

	// The plugin through kubectl itself; the key alone on stdout.
	stdout, stderr, err := cli(t, kubeconfig, "", "/usr/bin/kubectl", "apikey", "create", "laptop")
	if err != nil {
		t.Fatalf("kubectl apikey create: %v\n%s", err, stderr)
	}
	if !testenv.KeyLine.MatchString(stdout) {
		t.Fatalf("kubectl apikey create printed %d bytes on stdout, want the key and a newline only", len(stdout))
	}
	laptop := strings.TrimSpace(stdout)
	if strings.Contains(stderr, laptop) {
		t.Error("the key is on stderr too")
	}
	if code, body := docsCurl(t, base, laptop, false); code != http.StatusOK || !strings.Contains(body, "Echo: Hello") {
		t.Fatalf("docs request with the new key: %d %s, want 200 from the echo stand-in", code, body)
	}
	if code, body := docsCurl(t, base, laptop, true); code != http.StatusOK || !strings.Contains(body, "data: [DONE]") {
		t.Errorf("streamed docs request: %d %s, want an SSE stream", code, body)
	}

	// A second key, through `codevector keys`, revoked: 401.
	stdout, stderr, err = cli(t, kubeconfig, "", "codevector", "keys", "create", "ci", "--expires", "30d")
	if err != nil {
		t.Fatalf("codevector keys create: %v\n%s", err, stderr)
	}
	ci := strings.TrimSpace(stdout)
	if code, _ := docsCurl(t, base, ci, false); code != http.StatusOK {
		t.Fatalf("docs request with ci: %d, want 200", code)
	}
	if _, stderr, err := cli(t, kubeconfig, "", "kubectl-apikey", "revoke", "ci", "--yes"); err != nil || !strings.Contains(stderr, "Revoked: refused by 1 of 1 gateway replica in ") {
		t.Fatalf("kubectl-apikey revoke: %v\n%s", err, stderr)
	}
	eventuallyStatus(t, base, ci, http.StatusUnauthorized)

	// Stop: nothing survives.
	pids := devmode.ProcessesOf(state)
	if len(pids) != 2 {
		t.Fatalf("found %d etcd/kube-apiserver processes for %s, want 2", len(pids), state)
	}
	d.stop(t)
	assertGone(t, state, pids)
	if !strings.Contains(d.stderr.String(), "Stopped. Keys are kept in") {
		t.Errorf("no clean-stop message:\n%s", d.stderr.String())
	}

	// Start again: same keys, same behaviour.
	d = startDev(t, listen, state)
	stdout, stderr, err = cli(t, kubeconfig, "", "kubectl-apikey", "list")
	if err != nil {
		t.Fatalf("kubectl-apikey list after restart: %v\n%s", err, stderr)
	}
	for _, row := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^laptop\s+cvk_\w{8}\s+Active\s+`),
		regexp.MustCompile(`(?m)^ci\s+cvk_\w{8}\s+Revoked\s+`),
	} {
		if !row.MatchString(stdout) {
			t.Errorf("list after restart does not match %s:\n%s", row, stdout)
		}
	}
	if code, body := docsCurl(t, base, laptop, false); code != http.StatusOK {
		t.Errorf("laptop after restart: %d %s, want 200", code, body)
	}
	if code, _ := docsCurl(t, base, ci, false); code != http.StatusUnauthorized {
		t.Errorf("revoked ci after restart: %d, want 401", code)
	}

	// A second dev on the same state directory is refused, clearly; so is
	// a busy port.
	_, stderr, err = cli(t, kubeconfig, "", "codevector", "dev", "--listen", testenv.FreeAddr(t), "--state-dir", state)
	if err == nil || !strings.Contains(stderr, "is in use by another codevector dev") {
		t.Errorf("second dev on one state dir: err=%v, stderr:\n%s", err, stderr)
	}
	_, stderr, err = cli(t, kubeconfig, "", "codevector", "dev", "--listen", listen, "--state-dir", filepath.Join(t.TempDir(), "other"))
	if err == nil || !strings.Contains(stderr, "the port is already in use") || !strings.Contains(stderr, "--listen") {
		t.Errorf("dev on a busy port: err=%v, stderr:\n%s", err, stderr)
	}

	// Revoke through the restarted system: 401.
	if _, stderr, err := cli(t, kubeconfig, "yes\n", "kubectl-apikey", "revoke", "laptop"); err != nil || !strings.Contains(stderr, "Revoked: refused by 1 of 1 gateway replica in ") {
		t.Fatalf("revoke laptop: %v\n%s", err, stderr)
	}
	eventuallyStatus(t, base, laptop, http.StatusUnauthorized)

	// SIGKILL leaves etcd and kube-apiserver behind; the next start stops
	// them before it starts its own, and its own stop leaves nothing.
	pids = devmode.ProcessesOf(state)
	if err := d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-d.done
	d = startDev(t, listen, state)
	if !strings.Contains(d.stderr.String(), "left running by a previous codevector dev") {
		t.Errorf("no word about the leftovers of the killed run:\n%s", d.stderr.String())
	}
	assertGoneNow(t, pids)
	if code, _ := docsCurl(t, base, laptop, false); code != http.StatusUnauthorized {
		t.Errorf("revoked laptop after the SIGKILL and restart: %d, want 401", code)
	}
	pids = devmode.ProcessesOf(state)
	d.stop(t)
	assertGone(t, state, pids)
}

// assertGone checks that none of pids is running and that no process
// serves state any more.
func assertGone(t *testing.T, state string, pids []int) {
	t.Helper()
	assertGoneNow(t, pids)
	if left := devmode.ProcessesOf(state); len(left) > 0 {
		t.Errorf("processes %v still serve %s after the stop", left, state)
	}
}

func assertGoneNow(t *testing.T, pids []int) {
	t.Helper()
	for _, pid := range pids {
		if running(pid) {
			t.Errorf("process %d (%s) still running", pid, comm(pid))
		}
	}
}

// running: the process exists and is not a zombie.
func running(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i < 0 || i+2 >= len(stat) || stat[i+2] != 'Z'
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// docsCurl sends the request of the docs' curl example:
//
//	curl $BASE/gateway/openai/v1/chat/completions \
//	  -H "Authorization: Bearer $KEY" -H "Content-Type: application/json" \
//	  -d '{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello"}]}'
func docsCurl(t *testing.T, base, key string, stream bool) (int, string) {
	t.Helper()
	body := testenv.DocsChatBody
	if stream {
		body = `{"model": "claude-sonnet-4-6", "stream": true, "messages": [{"role": "user", "content": "Hello"}]}`
	}
	return testenv.PostChat(t, base, key, body)
}

func eventuallyStatus(t *testing.T, base, key string, want int) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if code, body := docsCurl(t, base, key, false); code != want {
			return fmt.Errorf("gateway answered %d %s, want %d", code, body, want)
		}
		return nil
	})
}

func get(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
