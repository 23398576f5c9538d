package resilience

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/codevector/codevector/internal/testenv"
)

var (
	env *testenv.Env
	// managerLogs holds every log line of the in-process managers, at
	// debug level, for the leak check.
	managerLogs = &testenv.LogBuffer{}
	// binary is bin/codevector built for this test run: the manager and
	// gateway run as real processes here, so they can be killed for real.
	binary string
)

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "codevector-resilience-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	root, err := testenv.RepoRoot()
	if err != nil {
		return 0, err
	}
	binary = filepath.Join(tmp, "codevector")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("building codevector: %w", err)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(managerLogs), zap.UseDevMode(true)))
	if env, err = testenv.Start(context.Background()); err != nil {
		return 0, err
	}
	defer env.Stop()
	return m.Run(), nil
}

// process is a codevector subcommand running as a child process.
type process struct {
	cmd  *exec.Cmd
	logs *testenv.LogBuffer
}

func start(t *testing.T, args ...string) *process {
	t.Helper()
	p := &process{cmd: exec.Command(binary, args...), logs: &testenv.LogBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting codevector %s: %v", strings.Join(args, " "), err)
	}
	t.Cleanup(func() { p.kill() })
	return p
}

// kill sends SIGKILL: no deferred cleanup, no graceful shutdown.
func (p *process) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
	}
}

func get(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
