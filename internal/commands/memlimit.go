package commands

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// setSoftMemoryLimit gives the Go runtime a soft memory limit of 80 % of
// the container's, unless GOMEMLIMIT sets one. A gateway's live heap is
// its key index (under 1 KiB a key), but while it starts its garbage
// (every listed object, decoded and dropped) grows the heap towards twice
// the live size before the collector runs; near the container's limit the
// collector now runs sooner instead of the kernel killing the pod. The
// other 20 % is for what the Go heap does not count (stacks, the
// runtime, argon2's memory while it is returned).
func setSoftMemoryLimit(log *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, ok := containerMemoryLimit(os.ReadFile)
	if !ok {
		return
	}
	soft := limit / 10 * 8
	debug.SetMemoryLimit(soft)
	log.Info("Set the Go soft memory limit from the container's", "containerLimitBytes", limit, "softLimitBytes", soft)
}

// containerMemoryLimit is the memory limit of this process's cgroup (v2,
// else v1), false when there is none.
func containerMemoryLimit(readFile func(string) ([]byte, error)) (int64, bool) {
	for _, path := range []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"} {
		data, err := readFile(path)
		if err != nil {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		// "max" (v2) or a number near 2^63 (v1): no limit.
		if err != nil || n <= 0 || n >= 1<<60 {
			return 0, false
		}
		return n, true
	}
	return 0, false
}
