package devmode

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// process is an etcd or kube-apiserver serving a state directory.
type process struct {
	pid  int
	name string
}

// leftovers finds the etcd and kube-apiserver processes of the state
// directory dir by their command lines: envtest passes
// --data-dir=DIR/etcd to etcd and --cert-dir=DIR/apiserver to the API
// server, and nothing else on the machine names those directories.
func leftovers(dir string) []process {
	want := map[string]string{
		"--data-dir=" + filepath.Join(dir, "etcd"):      "etcd",
		"--cert-dir=" + filepath.Join(dir, "apiserver"): "kube-apiserver",
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(cmdline) == 0 {
			continue // gone, or a zombie (already exited)
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if name, ok := want[string(arg)]; ok {
				out = append(out, process{pid: pid, name: name})
				break
			}
		}
	}
	return out
}

// ProcessesOf lists the PIDs of the etcd and kube-apiserver processes that
// serve the state directory dir (tests use it to prove nothing survives a
// stop).
func ProcessesOf(dir string) []int {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil
	}
	var pids []int
	for _, p := range leftovers(abs) {
		pids = append(pids, p.pid)
	}
	return pids
}

// stopProcessGroup sends SIGTERM to the process group led by pid (envtest
// starts each binary as a group leader), waits up to grace for the process
// to go, then sends SIGKILL.
func stopProcessGroup(pid int, grace time.Duration) {
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state is the field after the parenthesised command name.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		return stat[i+2] != 'Z'
	}
	return true
}
