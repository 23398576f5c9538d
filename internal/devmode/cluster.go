// The embedded control plane of `codevector dev`:
// etcd and kube-apiserver (the binaries `make envtest` builds), started
// through controller-runtime's envtest, with etcd's data kept in a state
// directory so that keys survive a restart.
//
// What persists and what does not:
//
//   - etcd's data (DIR/etcd): every APIKey, Secret and binding.
//   - Nothing else. The API server's serving certificate, its client CA and
//     every user's client certificate are new at each start (envtest keeps
//     its CA in memory only), and the API server's port is picked free at
//     each start. DIR/kubeconfig is therefore rewritten at every start: the
//     path stays the same, so `export KUBECONFIG=DIR/kubeconfig` keeps
//     working across restarts, but a copy of an old kubeconfig does not.
//
// etcd and kube-apiserver run in their own process groups (envtest sets
// Setpgid), so a terminal's Ctrl-C reaches only the codevector process,
// which then stops them in order: API server, then etcd. If codevector is
// killed without a chance to do that (SIGKILL), the next start finds the
// leftovers by their command lines (they name DIR) and stops them first.

package devmode

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// controlPlaneOptions configure startControlPlane.
type controlPlaneOptions struct {
	// StateDir holds etcd's data, the control plane's logs and the
	// kubeconfig files. Created if missing.
	StateDir string
	// Assets is the directory with the etcd and kube-apiserver binaries.
	Assets string
	// StartTimeout bounds the start of each process (default 60s: the
	// first start of an API server on a busy two-core machine is slow).
	StartTimeout time.Duration
	// Notify receives one line per notable event (leftover processes
	// stopped); nil discards them.
	Notify func(format string, args ...any)
}

// controlPlane is a running etcd and kube-apiserver.
type controlPlane struct {
	// StateDir is the absolute state directory.
	StateDir string
	// Admin is a cluster-admin (system:masters) client configuration.
	Admin *rest.Config

	env  *envtest.Environment
	lock *os.File
	logs []*os.File
}

// startControlPlane takes the state directory's lock, stops leftovers of a
// previous run that was killed, and starts etcd and kube-apiserver.
func startControlPlane(o controlPlaneOptions) (_ *controlPlane, err error) {
	if o.StartTimeout == 0 {
		o.StartTimeout = 60 * time.Second
	}
	if o.Notify == nil {
		o.Notify = func(string, ...any) {}
	}
	dir, err := filepath.Abs(o.StateDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory: %w", err)
	}
	for _, bin := range []string{"etcd", "kube-apiserver"} {
		if _, err := os.Stat(filepath.Join(o.Assets, bin)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run 'make envtest' (it builds kube-apiserver and etcd once, about five minutes)", bin, o.Assets)
		}
	}
	c := &controlPlane{StateDir: dir}
	if c.lock, err = lockStateDir(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.release()
		}
	}()
	for _, p := range leftovers(dir) {
		o.Notify("Stopping %s (pid %d), left running by a previous codevector dev that did not shut down cleanly", p.name, p.pid)
		stopProcessGroup(p.pid, 10*time.Second)
	}

	// The API server's certificates are regenerated at every start (see the
	// package comment), so its directory starts empty.
	certDir := filepath.Join(dir, "apiserver")
	if err := os.RemoveAll(certDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	etcdLog, err := c.openLog("etcd.log")
	if err != nil {
		return nil, err
	}
	apiLog, err := c.openLog("kube-apiserver.log")
	if err != nil {
		return nil, err
	}

	etcd := &envtest.Etcd{DataDir: filepath.Join(dir, "etcd"), Out: etcdLog, Err: etcdLog}
	// envtest turns fsync off for speed; these are data a developer wants
	// to keep, so it goes back on.
	etcd.Configure().Set("unsafe-no-fsync", "false")
	c.env = &envtest.Environment{
		BinaryAssetsDirectory:    o.Assets,
		ControlPlaneStartTimeout: o.StartTimeout,
		ControlPlaneStopTimeout:  20 * time.Second,
	}
	c.env.ControlPlane.Etcd = etcd
	c.env.ControlPlane.APIServer = &envtest.APIServer{CertDir: certDir, Out: apiLog, Err: apiLog}
	if c.Admin, err = c.env.Start(); err != nil {
		_ = c.env.Stop()
		return nil, fmt.Errorf("starting etcd and kube-apiserver: %w (their logs: %s)", err, filepath.Join(dir, "logs"))
	}
	return c, nil
}

// AddUser returns a client configuration that authenticates as name, in
// groups, with a client certificate valid until the next start.
func (c *controlPlane) AddUser(name string, groups ...string) (*rest.Config, error) {
	u, err := c.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, fmt.Errorf("creating user %s: %w", name, err)
	}
	return u.Config(), nil
}

// Stop stops kube-apiserver, then etcd (each gets SIGTERM, then SIGKILL
// after 20s), and releases the state directory.
func (c *controlPlane) Stop() error {
	err := c.env.Stop()
	c.release()
	return err
}

// Kill sends SIGKILL to etcd and kube-apiserver at once: for a second
// Ctrl-C when a clean stop takes too long.
func (c *controlPlane) Kill() {
	for _, p := range leftovers(c.StateDir) {
		_ = syscall.Kill(-p.pid, syscall.SIGKILL)
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
}

func (c *controlPlane) openLog(name string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(c.StateDir, "logs", name), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	c.logs = append(c.logs, f)
	return f, nil
}

func (c *controlPlane) release() {
	for _, f := range c.logs {
		_ = f.Close()
	}
	if c.lock != nil {
		_ = c.lock.Truncate(0)
		_ = c.lock.Close() // closing drops the flock
		c.lock = nil
	}
}

// lockStateDir takes an exclusive lock on DIR/lock, so two dev processes
// never share one etcd data directory (etcd would wait forever on its own
// lock instead of saying why).
func lockStateDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, "lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder, _ := os.ReadFile(path)
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := strings.TrimSpace(string(holder))
			if who != "" {
				who = " (pid " + who + ")"
			}
			return nil, fmt.Errorf("state directory %s is in use by another codevector dev%s: stop it first, or pass --state-dir to run a second one", dir, who)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}
