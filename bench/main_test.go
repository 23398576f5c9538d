package bench

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/codevector/codevector/internal/testenv"
)

// env is the one control plane (kube-apiserver + etcd) of the run. Every
// benchmark starts its own manager and gateways against it and stops them
// when it ends, so one benchmark's components do not eat another's CPU.
var env *testenv.Env

// results collects the Markdown sections the benchmarks produce, printed
// (and written to BENCH_OUT) once all have run.
var results = &report{}

func TestMain(m *testing.M) {
	// Components log errors only: a benchmark's output is its tables.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(zapcore.ErrorLevel)))
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))

	start := time.Now()
	loadBefore := loadAverage()
	var err error
	env, err = testenv.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	if len(results.sections) > 0 {
		out := results.markdown(describeMachine(), start, loadBefore, loadAverage())
		fmt.Print("\n" + out)
		if path := os.Getenv("BENCH_OUT"); path != "" {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "writing results:", err)
				code = 1
			} else {
				fmt.Println("results written to", path)
			}
		}
	}
	os.Exit(code)
}

// Knobs read from the environment, so `make bench` and a quick
// `BENCH_DURATION=1s go test ...` share one code path.

func envDuration(name string, def time.Duration) time.Duration {
	if v := os.Getenv(name); v != "" {
		if d, err := time.ParseDuration(v); err == nil && d > 0 {
			return d
		}
		fmt.Fprintf(os.Stderr, "ignoring %s=%q: not a positive duration\n", name, v)
	}
	return def
}

func envInt(name string, def int) int {
	if v := os.Getenv(name); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			return n
		}
		fmt.Fprintf(os.Stderr, "ignoring %s=%q: not a positive integer\n", name, v)
	}
	return def
}

func envInts(name string, def []int) []int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "ignoring %s=%q: not a list of positive integers\n", name, v)
			return def
		}
		out = append(out, n)
	}
	return out
}
