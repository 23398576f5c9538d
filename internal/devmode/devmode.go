// Package devmode assembles `codevector dev`, the whole system on one
// machine, and only wires. Run starts etcd and kube-apiserver with their
// data kept in a state directory (cluster.go, procs.go), installs the CRD,
// RBAC roles and admission policies from package config (install.go; the
// test environment installs with it too), creates the identities of the
// manager, the gateway and the person at the keyboard (identities.go,
// kubeconfig.go), picks the providers, real ones when their credentials are
// set and else the echo stand-in (providers.go, echo.go), and runs the
// manager (internal/manager) and the gateway (gateway/server) in this
// process until its context ends.
//
// It links the manager, the gateway and envtest at once, so only the dev
// command, internal/testenv and tests may import it (layout_test.go).
package devmode

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/k8sversion"
	"github.com/codevector/codevector/internal/manager"
)

// devLastUsedInterval makes "Last used" show up within seconds in dev mode
// (the cluster default is 30s).
const devLastUsedInterval = 5 * time.Second

// Options configure Run.
type Options struct {
	// Listen is the address of the gateway, console and docs.
	Listen string
	// StateDir holds etcd's data, the control plane's logs and
	// DIR/kubeconfig, kept across restarts.
	StateDir string
	// Logger is the gateway's logger; the manager logs through
	// controller-runtime's logger, which the caller sets.
	Logger *slog.Logger
	// Getenv reads OPENAI_API_KEY and ANTHROPIC_API_KEY (os.Getenv if nil).
	Getenv func(string) string
	// Stdout receives the banner once everything is ready; Stderr the
	// progress lines and warnings.
	Stdout, Stderr io.Writer
}

// Run runs dev mode until ctx ends, then stops the gateway, the manager,
// kube-apiserver and etcd, in that order.
func Run(ctx context.Context, o Options) error {
	if o.Getenv == nil {
		o.Getenv = os.Getenv
	}
	stderr := o.Stderr

	// The port first: a busy port should fail in a second, not after the
	// control plane has started.
	ln, err := listen(o.Listen, stderr)
	if err != nil {
		return err
	}
	defer ln.Close()
	assets, err := findAssets()
	if err != nil {
		return err
	}

	ps, notes, stopEcho, err := devProviders(o.Getenv)
	if err != nil {
		return err
	}
	defer stopEcho()

	fmt.Fprintf(stderr, "Starting etcd and kube-apiserver (state in %s) ...\n", o.StateDir)
	cluster, err := startControlPlane(controlPlaneOptions{
		StateDir: o.StateDir,
		Assets:   assets,
		Notify:   func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) },
	})
	if err != nil {
		return err
	}
	// Whatever happens from here on, etcd and kube-apiserver stop with us.
	stopCluster := sync.OnceFunc(func() {
		if err := cluster.Stop(); err != nil {
			fmt.Fprintf(stderr, "Stopping the control plane: %v\n", err)
		}
	})
	defer stopCluster()
	forceStopOnSecondSignal(ctx, cluster, stderr)

	sys, err := setUpDevCluster(ctx, cluster)
	if err != nil {
		return err
	}

	runErr := runManagerAndGateway(ctx, o, sys, ps, ln, notes)
	stopCluster()
	if runErr == nil {
		fmt.Fprintf(stderr, "Stopped. Keys are kept in %s; `make dev` starts again with them.\n", o.StateDir)
	}
	return runErr
}

// listen opens the dev listener on addr, warning on stderr when it is
// reachable from other machines.
func listen(addr string, stderr io.Writer) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, busyPortError(addr, err)
	}
	if !isLoopback(ln.Addr()) {
		fmt.Fprintf(stderr, "WARNING: %s is reachable from other machines, and in dev mode everyone who reaches the console is signed in as %s. "+
			"It answers only requests addressed to localhost or a loopback address (others get 421), so reach it from elsewhere through an SSH tunnel. Use --listen localhost:PORT unless you mean it.\n", ln.Addr(), console.DevUser)
	}
	return ln, nil
}

// runManagerAndGateway runs the manager and the gateway (on ln) against
// the dev cluster until ctx ends or either stops, printing the banner
// once the gateway is ready, then stops both.
func runManagerAndGateway(ctx context.Context, o Options, sys *devIdentities, ps *providers.Providers, ln net.Listener, notes []string) error {
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	mgr, err := manager.New(runCtx, sys.manager, manager.Options{})
	if err != nil {
		return err
	}
	gw, err := server.New(sys.gateway, server.Options{
		Providers:        ps,
		LastUsedInterval: devLastUsedInterval,
		Logger:           o.Logger,
		// One replica, whose Lease a restart (even after SIGKILL) takes
		// over rather than leaving one that lapses.
		ReplicaName: "dev",
		// Everyone who opens the console is console.DevUser, the user of
		// DIR/kubeconfig too.
		Console: console.Options{Auth: console.AuthDev},
	})
	if err != nil {
		return err
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(runCtx) }()
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(runCtx, ln) }()

	base := baseURL(o.Listen, ln.Addr())
	var runErr error
	if err := waitReady(runCtx, base+"/readyz", gwDone); err != nil {
		runErr = err
	} else if ctx.Err() == nil {
		printBanner(o.Stdout, base, sys.kubeconfig, notes)
		select {
		case <-ctx.Done():
		case err := <-mgrDone:
			runErr = fmt.Errorf("manager stopped: %w", err)
			mgrDone <- nil
		case err := <-gwDone:
			runErr = fmt.Errorf("gateway stopped: %w", err)
			gwDone <- nil
		}
	}

	fmt.Fprintln(o.Stderr, "Stopping gateway, manager, kube-apiserver and etcd ...")
	cancel()
	if err := <-gwDone; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("gateway: %w", err)
	}
	if err := <-mgrDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("manager: %w", err)
	}
	return runErr
}

// devIdentities is what setUpDevCluster prepared: the client
// configurations of manager and gateway, and the dev user's kubeconfig.
type devIdentities struct {
	manager, gateway *rest.Config
	kubeconfig       string
}

// setUpDevCluster installs CodeVector on the fresh (or restarted) control
// plane and creates the identities: manager and gateway run as their
// service accounts' users, bound by config/rbac exactly as in a cluster,
// and the person at the keyboard gets DIR/kubeconfig as console.DevUser.
func setUpDevCluster(ctx context.Context, cluster *controlPlane) (*devIdentities, error) {
	admin, err := client.New(cluster.Admin, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, err
	}
	if err := Install(ctx, cluster.Admin, admin); err != nil {
		return nil, fmt.Errorf("installing the CRD, RBAC and admission policies: %w", err)
	}
	if err := GrantDevUser(ctx, admin); err != nil {
		return nil, err
	}
	ids := &devIdentities{}
	sa := func(name string) (*rest.Config, error) {
		user, groups := ServiceAccountUser(gatewayv1alpha1.DefaultSystemNamespace, name)
		return cluster.AddUser(user, groups...)
	}
	if ids.manager, err = sa("codevector-manager"); err != nil {
		return nil, err
	}
	if ids.gateway, err = sa("codevector-gateway"); err != nil {
		return nil, err
	}
	dev, err := cluster.AddUser(console.DevUser)
	if err != nil {
		return nil, err
	}
	ids.kubeconfig = filepath.Join(cluster.StateDir, "kubeconfig")
	if err := WriteKubeconfig(ids.kubeconfig, dev, "codevector-dev", console.DevUser, DevNamespace); err != nil {
		return nil, err
	}
	// A cluster-admin kubeconfig, for looking under the hood (README:
	// troubleshooting). Not printed: day-to-day work uses the dev user.
	if err := WriteKubeconfig(filepath.Join(cluster.StateDir, "admin.kubeconfig"), cluster.Admin, "codevector-dev-admin", "admin", DevNamespace); err != nil {
		return nil, err
	}
	return ids, nil
}

// busyPortError explains a failed listen in words a person can act on.
func busyPortError(listen string, err error) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("cannot listen on %s: the port is already in use (another codevector dev, or another program). Stop it, or pick another address: codevector dev --listen localhost:8081 (make dev DEV_FLAGS='--listen localhost:8081')", listen)
	}
	return fmt.Errorf("cannot listen on %s: %w", listen, err)
}

// findAssets locates kube-apiserver and etcd: $KUBEBUILDER_ASSETS (set by
// the Makefile), else bin/k8s/<version> next to this binary (bin/codevector),
// else under the working directory.
func findAssets() (string, error) {
	platform := k8sversion.Version + "-" + runtime.GOOS + "-" + runtime.GOARCH
	var candidates []string
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		candidates = append(candidates, d)
	}
	if exe, err := os.Executable(); err == nil {
		if exe, err = filepath.EvalSymlinks(exe); err == nil {
			candidates = append(candidates, filepath.Join(filepath.Dir(exe), "k8s", platform))
		}
	}
	candidates = append(candidates, filepath.Join("bin", "k8s", platform))
	for _, d := range candidates {
		if _, err := os.Stat(filepath.Join(d, "kube-apiserver")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("kube-apiserver and etcd not found (looked in %s): run 'make dev', or 'make envtest' once (it builds them from the Go module proxy, about five minutes)", strings.Join(candidates, ", "))
}

// forceStopOnSecondSignal kills etcd and kube-apiserver and exits when a
// second Ctrl-C (or SIGTERM) arrives while a clean stop is under way.
func forceStopOnSecondSignal(ctx context.Context, cluster *controlPlane, stderr io.Writer) {
	go func() {
		<-ctx.Done()
		fmt.Fprintln(stderr, "(press Ctrl-C again to stop at once)")
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
		<-ch
		fmt.Fprintln(stderr, "Killing kube-apiserver and etcd")
		cluster.Kill()
		os.Exit(130)
	}()
}

// baseURL is the URL people type: the --listen host (localhost when it
// listens on every interface) and the port actually bound.
func baseURL(listen string, addr net.Addr) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	_, port, _ := net.SplitHostPort(addr.String())
	return "http://" + net.JoinHostPort(host, port)
}

// isLoopback tells whether addr is reachable from this machine only.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// waitReady polls the gateway's /readyz until it answers 200 (its watch
// cache has synced), the gateway fails, or a minute passes.
func waitReady(ctx context.Context, url string, gwDone chan error) error {
	last := "no answer"
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		select {
		case err := <-gwDone:
			gwDone <- err
			return false, fmt.Errorf("gateway stopped before it was ready: %w", err)
		default:
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, nil
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			return true, nil
		}
		last = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(body)))
		return false, nil
	})
	switch {
	case err == nil, ctx.Err() != nil:
		return nil
	case wait.Interrupted(err):
		return fmt.Errorf("gateway not ready after a minute (/readyz: %s)", last)
	default:
		return err
	}
}

// printBanner tells the person at the keyboard where everything is.
func printBanner(w io.Writer, base, kubeconfig string, notes []string) {
	fmt.Fprintf(w, `
CodeVector is running.

  Console   %[1]s/api-keys
  Docs      %[1]s/docs/
  Gateway   %[1]s/gateway/openai/v1    (OpenAI-compatible base URL)

Use the cluster as the dev user (%[2]s):

  export KUBECONFIG=%[3]s
  export PATH="$PWD/bin:$PATH"        # for kubectl apikey
  KEY=$(kubectl apikey create laptop)

  curl %[1]s/gateway/openai/v1/chat/completions \
    -H "Authorization: Bearer $KEY" \
    -H "Content-Type: application/json" \
    -d '{"model": "claude-sonnet-4-6", "messages": [{"role": "user", "content": "Hello"}]}'

Providers:
`, base, console.DevUser, kubeconfig)
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprint(w, "\nPress Ctrl-C to stop; keys are kept for the next start.\n")
}
