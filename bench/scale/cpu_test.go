package scale

import (
	"bytes"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/testenv"
)

// The machine the benchmarks run on is often shared: these say how much
// CPU a gateway start took of its own and of the API server, and how busy
// the machine was, so a slow start can be told apart from a busy machine.

// processCPU is this process's CPU time so far (user and system); during
// a gateway start, what the gateway spends.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// apiserverCPU returns a function that reads the CPU time (user and
// system) kube-apiserver of env has used so far, found in /proc by its
// secure port; it reads 0 where there is no /proc.
func apiserverCPU(b testing.TB, env *testenv.Env) func() time.Duration {
	u, err := url.Parse(env.Config.Host)
	if err != nil {
		b.Fatal(err)
	}
	want := []byte("--secure-port=" + u.Port())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, dir := range dirs {
		cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
		if err != nil || !bytes.Contains(cmdline, []byte("kube-apiserver")) {
			continue
		}
		for _, arg := range bytes.Split(cmdline, []byte{0}) {
			if bytes.Equal(arg, want) {
				stat := filepath.Join(dir, "stat")
				return func() time.Duration { return procCPU(stat) }
			}
		}
	}
	b.Logf("kube-apiserver on port %s not found in /proc: its CPU is not measured", u.Port())
	return func() time.Duration { return 0 }
}

// procCPU reads utime and stime (fields 14 and 15, in clock ticks) of a
// /proc/<pid>/stat file.
func procCPU(stat string) time.Duration {
	data, err := os.ReadFile(stat)
	if err != nil {
		return 0
	}
	// The command name (field 2) is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticksPerSecond
}

// loadAverage is the 1-minute load average.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return 0
	}
	l, _ := strconv.ParseFloat(f[0], 64)
	return l
}
