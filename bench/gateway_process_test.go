package bench

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/testenv"
)

// Gateway replicas as processes of the real binary, one each, as pods
// are in a cluster: each has its own heap and garbage collector, so one
// replica's allocations (a new replica decoding every hash Secret) do
// not pace the collector of the others, nor of the load generator.

// buildGateway builds the codevector binary from the repository's root
// into dir, once per benchmark that runs processes, and returns its path.
func buildGateway(b *testing.B, dir string) string {
	b.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		b.Fatal(err)
	}
	binary := filepath.Join(dir, "codevector")
	start := time.Now()
	cmd := exec.Command("go", "build", "-o", binary, ".")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("building codevector in %s: %v\n%s", root, err, out)
	}
	fmt.Printf("%s built %s in %v\n", clockNow(), binary, time.Since(start).Round(100*time.Millisecond))
	return binary
}

// gatewayProcess is one `codevector gateway` child process.
type gatewayProcess struct {
	cmd     *exec.Cmd
	logPath string // its stdout and stderr
	exited  chan struct{}
	waitErr error        // set before exited is closed
	usedCPU atomic.Int64 // user+system ns, set before exited is closed
}

// startGatewayProcess runs binary with args and extra environment
// variables, its output in logPath. The child is in a process group of
// its own (a signal meant for the benchmark's terminal does not reach
// it) and gets SIGKILL if the benchmark process dies first; the test's
// cleanup kills it if it still runs, and prints the tail of its log if
// the test failed.
func startGatewayProcess(b *testing.B, binary string, args, env []string, logPath string) *gatewayProcess {
	b.Helper()
	log, err := os.Create(logPath)
	if err != nil {
		b.Fatalf("creating the replica's log: %v", err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		b.Fatalf("starting %s %s: %v", binary, strings.Join(args, " "), err)
	}
	p := &gatewayProcess{cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		p.usedCPU.Store(int64(cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()))
		log.Close()
		close(p.exited)
	}()
	b.Cleanup(func() {
		p.kill()
		if b.Failed() {
			fmt.Fprintf(os.Stderr, "--- last lines of %s ---\n%s\n", logPath, p.logTail(40))
		}
	})
	return p
}

// waitReady polls url's /readyz every 50 ms until it answers 200, and
// fails b with the end of the process's log if the process exits first or
// ready passes.
func (p *gatewayProcess) waitReady(b *testing.B, url string, ready time.Duration) {
	b.Helper()
	deadline := time.Now().Add(ready)
	c := &http.Client{Timeout: time.Second}
	var last error
	for {
		select {
		case <-p.exited:
			b.Fatalf("gateway process %d exited before it was ready (%v); last lines of %s:\n%s", p.cmd.Process.Pid, p.waitErr, p.logPath, p.logTail(40))
		default:
		}
		resp, err := c.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("/readyz answered %d", resp.StatusCode)
		}
		last = err
		if time.Now().After(deadline) {
			b.Fatalf("gateway process %d not ready within %v: %v; last lines of %s:\n%s", p.cmd.Process.Pid, ready, last, p.logPath, p.logTail(40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop shuts the process down as the kubelet does: SIGTERM (the gateway
// drains and flushes last-use times), then SIGKILL if it has not exited
// within grace, Kubernetes' default terminationGracePeriodSeconds. An
// exit other than 0 after SIGTERM is an error, with the log's end.
func (p *gatewayProcess) stop(grace time.Duration) error {
	pid := p.cmd.Process.Pid
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("sending SIGTERM to gateway process %d: %w", pid, err)
	}
	select {
	case <-p.exited:
	case <-time.After(grace):
		p.kill()
		return fmt.Errorf("gateway process %d still running %v after SIGTERM, killed; last lines of %s:\n%s", pid, grace, p.logPath, p.logTail(40))
	}
	if p.waitErr != nil {
		return fmt.Errorf("gateway process %d stopped with %v; last lines of %s:\n%s", pid, p.waitErr, p.logPath, p.logTail(40))
	}
	return nil
}

// kill sends SIGKILL to the process's group, if it still runs, and waits
// for it to exit.
func (p *gatewayProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.exited
}

// cpu is the CPU time the process has used so far, or in all once it
// has exited.
func (p *gatewayProcess) cpu() time.Duration {
	select {
	case <-p.exited:
		return time.Duration(p.usedCPU.Load())
	default:
	}
	if used := processCPU(strconv.Itoa(p.cmd.Process.Pid)); used > 0 {
		return used
	}
	// Reaped between the two looks: /proc no longer has it.
	<-p.exited
	return time.Duration(p.usedCPU.Load())
}

// logTail is the last n lines of the process's log.
func (p *gatewayProcess) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(reading %s: %v)", p.logPath, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// freeLoopbackAddr is a port on ip that was free a moment ago, for a
// child process to listen on.
func freeLoopbackAddr(b *testing.B, ip string) string {
	b.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		b.Fatalf("finding a free port on %s: %v", ip, err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// gauges reads the named unlabelled gauges from the Prometheus text at
// url's /metrics; a gauge the gateway does not register is absent.
func gauges(c *http.Client, url string, names ...string) (map[string]float64, error) {
	resp, err := c.Get(url + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("reading %s/metrics: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("reading %s/metrics: status %d", url, resp.StatusCode)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !want[name] {
			continue // comments, labelled series, other metrics
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return nil, fmt.Errorf("reading %s/metrics: %s: %w", url, name, err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s/metrics: %w", url, err)
	}
	return out, nil
}

// processReplicas run each replica of a peered set as a `codevector
// gateway` process of its own, listening on its pod IP, as pods do.
type processReplicas struct {
	binary        string
	kubeconfig    string // a cluster admin's, as the in-process replicas use
	providersFile string
	flags         []string // more gateway flags, the same for every replica
	env           []string // more environment variables (GOGC, GODEBUG)
	logDir        string   // <pod name>.log per replica: its stdout and stderr
	grace         time.Duration
}

// newProcessReplicas builds the binary into dir and writes there the
// kubeconfig and a providers file with the one provider at upstream;
// every replica's log goes to logDir.
func newProcessReplicas(b *testing.B, dir, logDir, upstream string) processReplicas {
	b.Helper()
	providersFile := filepath.Join(dir, "providers.yaml")
	if err := os.WriteFile(providersFile, []byte(providersYAML(upstream, false)), 0o600); err != nil {
		b.Fatalf("writing the replicas' providers file: %v", err)
	}
	l := processReplicas{
		binary:        buildGateway(b, dir),
		kubeconfig:    env.KubeconfigFor(b, "bench-gateway", "system:masters"),
		providersFile: providersFile,
		logDir:        logDir,
		grace:         30 * time.Second, // terminationGracePeriodSeconds' default
	}
	for name, value := range benchCredentials {
		l.env = append(l.env, name+"="+value)
	}
	return l
}

func (l processReplicas) launch(b *testing.B, r *peeredReplica, peerListener net.Listener, selector string, ready time.Duration) {
	b.Helper()
	ip := r.pod.Status.PodIP
	// The child binds the peer address itself: the listener only held
	// the port, the same on every pod IP, until now.
	peerAddr := peerListener.Addr().String()
	peerListener.Close()
	listen, metrics := freeLoopbackAddr(b, ip), freeLoopbackAddr(b, ip)
	args := append([]string{"gateway",
		"--kubeconfig", l.kubeconfig,
		"--listen", listen,
		"--metrics-listen", metrics,
		"--providers", l.providersFile,
		"--peer-listen", peerAddr,
		"--peer-discovery", "kubernetes",
		"--peer-selector", selector,
	}, l.flags...)
	env := append([]string{"POD_IP=" + ip}, l.env...)
	p := startGatewayProcess(b, l.binary, args, env, filepath.Join(l.logDir, r.pod.Name+".log"))
	r.proc, r.url, r.metrics = p, "http://"+listen, "http://"+metrics
	r.stop = func() error { return p.stop(l.grace) }
	p.waitReady(b, r.url, ready)
}
