package chaos

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a codevector child process that can be killed, stopped and
// started again with the same arguments, its output appended to one log
// file across restarts (the leak scan reads it whole).
type proc struct {
	name    string
	binary  string
	args    []string
	env     []string
	logPath string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
}

func newProc(t *testing.T, name, binary, logPath string, env []string, args ...string) *proc {
	p := &proc{name: name, binary: binary, args: args, env: env, logPath: logPath}
	// Whatever happens to the test, no child outlives it.
	t.Cleanup(p.kill)
	return p
}

// start runs the process in a group of its own (the group is what kill
// signals), with SIGKILL if the test process dies first.
func (p *proc) start() error {
	log, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the log of %s: %w", p.name, err)
	}
	cmd := exec.Command(p.binary, p.args...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("starting %s (%s %s): %w", p.name, p.binary, strings.Join(p.args, " "), err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		log.Close()
		close(exited)
	}()
	p.mu.Lock()
	p.cmd, p.exited = cmd, exited
	p.mu.Unlock()
	return nil
}

// signal sends sig to the process's group, if it runs.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.name)
	}
	select {
	case <-p.exited:
		return fmt.Errorf("%s has exited", p.name)
	default:
	}
	if err := syscall.Kill(-p.cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %v to %s (pid %d): %w", sig, p.name, p.cmd.Process.Pid, err)
	}
	return nil
}

// kill sends SIGKILL (after SIGCONT, in case it was stopped) and waits
// until the process has exited.
func (p *proc) kill() {
	p.mu.Lock()
	cmd, exited := p.cmd, p.exited
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGCONT)
	<-exited
}

// running: the process was started and has not exited (a stopped one
// runs).
func (p *proc) running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

func (p *proc) pid() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// waitReady polls the process's url until it answers 200, for at most
// within; it gives up at once if the process exits.
func (p *proc) waitReady(url string, within time.Duration) error {
	p.mu.Lock()
	exited := p.exited
	p.mu.Unlock()
	c := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(within)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("%s exited before %s answered", p.name, url)
		default:
		}
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("answered %d", resp.StatusCode)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within %v: %v", url, within, last)
}

// freeAddr is a port on ip that was free a moment ago, for a child to
// listen on. The replicas listen on addresses of their own, 127.0.77.N,
// where other tests on the machine, which listen on 127.0.0.1, do not
// take the port meanwhile (as one did, between this and a replica's
// start, when they shared 127.0.0.1).
func freeAddr(t *testing.T, ip string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
