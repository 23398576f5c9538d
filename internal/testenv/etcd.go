package testenv

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Stop stops the control plane and removes etcd's data directory if the
// Env made it (Options.RestartableEtcd).
func (e *Env) Stop() error {
	err := e.Environment.Stop()
	if e.etcdDir != "" {
		err = errors.Join(err, os.RemoveAll(e.etcdDir))
	}
	return err
}

// KillEtcd sends SIGKILL to etcd, a crash with no chance to flush or
// close its clients, and returns once the process is gone; StartEtcd
// starts it again on its data. The Env must have been started with
// Options.RestartableEtcd. envtest keeps etcd's process to itself, so it
// is found by its command line, which names the Env's data directory.
func (e *Env) KillEtcd() error {
	if e.etcdDir == "" {
		return errors.New("etcd has no data directory of the Env's own: start the Env with Options.RestartableEtcd")
	}
	pid, err := pidWithArg("--data-dir=" + e.etcdDir)
	if err != nil {
		return err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("killing etcd (pid %d): %w", pid, err)
	}
	// envtest waits on its child, which reaps it: until then the pid is
	// a zombie, which signal 0 still finds.
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			return fmt.Errorf("etcd (pid %d) still there 10s after SIGKILL", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// StartEtcd starts etcd again after KillEtcd, on the same data directory
// and client URL (the one kube-apiserver knows), and returns once it
// reports healthy.
func (e *Env) StartEtcd() error {
	if e.etcdDir == "" {
		return errors.New("etcd has no data directory of the Env's own: start the Env with Options.RestartableEtcd")
	}
	if err := e.ControlPlane.Etcd.Start(); err != nil {
		return fmt.Errorf("restarting etcd on %s: %w", e.etcdDir, err)
	}
	return nil
}

// pidWithArg is the one process whose command line has arg.
func pidWithArg(arg string) (int, error) {
	procs, err := filepath.Glob("/proc/[0-9]*/cmdline")
	if err != nil {
		return 0, err
	}
	found := 0
	for _, p := range procs {
		cmdline, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		for _, a := range bytes.Split(cmdline, []byte{0}) {
			if string(a) == arg {
				pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
				if err != nil {
					return 0, err
				}
				if found != 0 && found != pid {
					return 0, fmt.Errorf("two processes have %s: %d and %d", arg, found, pid)
				}
				found = pid
			}
		}
	}
	if found == 0 {
		return 0, fmt.Errorf("no process has %s", arg)
	}
	return found, nil
}
