package bench

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Where the CPU went during a measurement. On a shared 2-core machine a
// req/s figure means little without knowing what else ran: the control
// plane's watch traffic, or other people's tests.

// cpuSample is a snapshot of CPU time: the whole machine, this process
// (load generator, upstream, proxies, manager, all in one), and the
// control plane it started (kube-apiserver and etcd).
type cpuSample struct {
	at                 time.Time
	machineBusy        time.Duration // all CPUs, all processes, not idle or iowait
	self, controlPlane time.Duration
}

func sampleCPU() cpuSample {
	s := cpuSample{at: time.Now(), machineBusy: machineBusy()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	for _, pid := range controlPlanePIDs() {
		s.controlPlane += processCPU(pid)
	}
	return s
}

// cpuUse is the CPU used between two samples, in cores (1.0 = one core busy
// for the whole interval).
type cpuUse struct {
	machine, self, controlPlane, other float64
	selfTime                           time.Duration
}

func cpuBetween(a, b cpuSample) cpuUse {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 {
		return cpuUse{}
	}
	u := cpuUse{
		machine:      (b.machineBusy - a.machineBusy).Seconds() / wall,
		self:         (b.self - a.self).Seconds() / wall,
		controlPlane: (b.controlPlane - a.controlPlane).Seconds() / wall,
		selfTime:     b.self - a.self,
	}
	u.other = max(0, u.machine-u.self-u.controlPlane)
	return u
}

// clockTick is USER_HZ, 100 on every Linux this runs on.
const clockTick = 100

func ticks(s string) time.Duration {
	n, _ := strconv.ParseUint(s, 10, 64)
	return time.Duration(n) * time.Second / clockTick
}

// machineBusy is the first line of /proc/stat: time not idle and not
// waiting for I/O, summed over CPUs.
func machineBusy() time.Duration {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	if !sc.Scan() {
		return 0
	}
	fields := strings.Fields(sc.Text()) // cpu user nice system idle iowait irq softirq steal ...
	var busy time.Duration
	for i, v := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 8 { // guest, guest_nice are already in user
			break
		}
		busy += ticks(v)
	}
	return busy
}

// statFields are the fields of /proc/<pid>/stat after the command name.
func statFields(pid string) []string {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return nil
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:]) // state ppid pgrp ... utime(12) stime(13)
}

func processCPU(pid string) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	return ticks(f[11]) + ticks(f[12])
}

// controlPlanePIDs are this process's children envtest started,
// kube-apiserver and etcd, by command name: not the gateway processes
// some benchmarks start (gatewayProcess), which they account for apart.
func controlPlanePIDs() []string {
	self := strconv.Itoa(os.Getpid())
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, d := range dirs {
		pid := filepath.Base(d)
		if f := statFields(pid); len(f) > 1 && f[1] == self && controlPlaneCommands[readTrimmed(filepath.Join(d, "comm"))] {
			out = append(out, pid)
		}
	}
	return out
}

var controlPlaneCommands = map[string]bool{"kube-apiserver": true, "etcd": true}

// procStatusField reads a "Name:   123 kB" line of a /proc status-like
// file, in kB.
func procStatusField(path, name string) uint64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != name {
			continue
		}
		n, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		return n
	}
	return 0
}

// memSample is this process's memory after a full GC: the live heap, the
// heap spans in use, and the resident set after returning free memory to
// the OS.
type memSample struct {
	heapAlloc, heapInuse, rss uint64
}

func sampleMemory() memSample {
	// Two cycles: finalizers freed by the first are collected by the second.
	runtime.GC()
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memSample{heapAlloc: m.HeapAlloc, heapInuse: m.HeapInuse, rss: procStatusField("/proc/self/status", "VmRSS") << 10}
}

// controlPlaneRSS is the resident memory of kube-apiserver and etcd, by
// command name.
func controlPlaneRSS() map[string]uint64 {
	out := map[string]uint64{}
	for _, pid := range controlPlanePIDs() {
		name := readTrimmed(filepath.Join("/proc", pid, "comm"))
		out[name] += procStatusField(filepath.Join("/proc", pid, "status"), "VmRSS") << 10
	}
	return out
}

// reniceControlPlane sets the nice value of every thread of kube-apiserver
// and etcd (Linux keeps one per thread; threads started later inherit
// their creator's). At 19 the gateway processes come first for the CPU,
// much as when the control plane runs on machines of its own.
func reniceControlPlane(nice int) error {
	for _, pid := range controlPlanePIDs() {
		tasks, err := filepath.Glob(filepath.Join("/proc", pid, "task", "[0-9]*"))
		if err != nil {
			return err
		}
		for _, task := range tasks {
			tid, _ := strconv.Atoi(filepath.Base(task))
			if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
				return fmt.Errorf("setting nice %d on thread %d of process %s: %w", nice, tid, pid, err)
			}
		}
	}
	return nil
}
