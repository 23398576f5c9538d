package testenv

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
)

// MainOption adds a step to Main.
type MainOption func(*mainSteps)

type mainSteps struct {
	setup []func(*Env) error
	after []func(code int) int
}

// Setup runs f once the control plane is up, before the tests; an error
// ends the run.
func Setup(f func(*Env) error) MainOption {
	return func(s *mainSteps) { s.setup = append(s.setup, f) }
}

// AfterTests runs f with the tests' exit code once they are done, while the
// control plane still runs (a check over everything the tests logged, say);
// what it returns is the exit code.
func AfterTests(f func(code int) int) MainOption {
	return func(s *mainSteps) { s.after = append(s.after, f) }
}

// Main is a package's TestMain: it starts a control plane into *env, runs
// the tests, stops the control plane and exits with the tests' code.
func Main(m *testing.M, env **Env, opts ...MainOption) {
	var steps mainSteps
	for _, o := range opts {
		o(&steps)
	}
	var err error
	if *env, err = Start(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := 1
	for _, f := range steps.setup {
		if err = f(*env); err != nil {
			break
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
		for _, f := range steps.after {
			code = f(code)
		}
	}
	if err := (*env).Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping control plane:", err)
	}
	os.Exit(code)
}

// Listener is an open listener on a free loopback port, closed when the
// test ends. Handing the listener itself to whatever serves on it leaves
// no moment in which another process could take the port.
func Listener(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}
