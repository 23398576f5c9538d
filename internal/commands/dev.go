package commands

import (
	"context"
	"errors"
	"flag"
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

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/echo"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/bootstrap"
	"github.com/codevector/codevector/internal/devcluster"
	"github.com/codevector/codevector/internal/k8sversion"
	"github.com/codevector/codevector/internal/manager"
)

// k8sVersion is the version of the control-plane binaries `make envtest`
// builds into bin/k8s/<version>-<os>-<arch>.
var k8sVersion = k8sversion.Version

// devLastUsedInterval makes "Last used" show up within seconds in dev mode
// (the cluster default is 30s).
const devLastUsedInterval = 5 * time.Second

func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var listen, stateDir, logLevel string
	fs.StringVar(&listen, "listen", "localhost:8080", "Address of the gateway, console and docs")
	fs.StringVar(&stateDir, "state-dir", ".codevector/dev", "Directory for etcd's data, logs and DIR/kubeconfig (kept across restarts)")
	fs.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: codevector dev [--listen localhost:8080] [--state-dir .codevector/dev]

Runs the whole system on this machine: etcd and kube-apiserver (data kept in
--state-dir), the CRD and admission policies, the manager, and the gateway
with its console and docs. Ctrl-C stops everything.

Set OPENAI_API_KEY and/or ANTHROPIC_API_KEY to use real providers; without
them the openai provider is a built-in echo stand-in.

Flags:
`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (see 'codevector dev -h')", fs.Arg(0))
	}
	log, err := newDevLogger(stderr, logLevel)
	if err != nil {
		return err
	}

	// The port first: a busy port should fail in a second, not after the
	// control plane has started.
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return busyPortError(listen, err)
	}
	defer ln.Close()
	if !isLoopback(ln.Addr()) {
		fmt.Fprintf(stderr, "WARNING: %s is reachable from other machines, and in dev mode everyone who reaches the console is signed in as %s. "+
			"It answers only requests addressed to localhost or a loopback address (others get 421), so reach it from elsewhere through an SSH tunnel. Use --listen localhost:PORT unless you mean it.\n", ln.Addr(), devcluster.DevUser)
	}
	assets, err := findAssets()
	if err != nil {
		return err
	}

	providers, notes, stopEcho, err := devProviders(os.Getenv)
	if err != nil {
		return err
	}
	defer stopEcho()

	fmt.Fprintf(stderr, "Starting etcd and kube-apiserver (state in %s) ...\n", stateDir)
	cluster, err := devcluster.Start(devcluster.Options{
		StateDir: stateDir,
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

	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	mgr, err := manager.New(runCtx, sys.manager, manager.Options{})
	if err != nil {
		return err
	}
	gw, err := server.New(sys.gateway, server.Options{
		Providers:        providers,
		LastUsedInterval: devLastUsedInterval,
		Logger:           log,
		// Everyone who opens the console is devcluster.DevUser, the user
		// of DIR/kubeconfig too.
		Console: console.Options{Auth: console.AuthDev},
	})
	if err != nil {
		return err
	}
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(runCtx) }()
	gwDone := make(chan error, 1)
	go func() { gwDone <- gw.Run(runCtx, ln) }()

	base := baseURL(listen, ln.Addr())
	var runErr error
	if err := waitReady(runCtx, base+"/readyz", gwDone); err != nil {
		runErr = err
	} else if ctx.Err() == nil {
		printBanner(stdout, base, sys.kubeconfig, notes)
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

	fmt.Fprintln(stderr, "Stopping gateway, manager, kube-apiserver and etcd ...")
	cancel()
	if err := <-gwDone; err != nil && runErr == nil && !errors.Is(err, context.Canceled) {
		runErr = fmt.Errorf("gateway: %w", err)
	}
	if err := <-mgrDone; err != nil && runErr == nil {
		runErr = fmt.Errorf("manager: %w", err)
	}
	stopCluster()
	if runErr == nil {
		fmt.Fprintf(stderr, "Stopped. Keys are kept in %s; `make dev` starts again with them.\n", stateDir)
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
// and the person at the keyboard gets DIR/kubeconfig as devcluster.DevUser.
func setUpDevCluster(ctx context.Context, cluster *devcluster.Cluster) (*devIdentities, error) {
	admin, err := client.New(cluster.Admin, client.Options{Scheme: manager.Scheme()})
	if err != nil {
		return nil, err
	}
	if err := bootstrap.Install(ctx, cluster.Admin, admin); err != nil {
		return nil, fmt.Errorf("installing the CRD, RBAC and admission policies: %w", err)
	}
	if err := devcluster.GrantDevUser(ctx, admin); err != nil {
		return nil, err
	}
	ids := &devIdentities{}
	sa := func(name string) (*rest.Config, error) {
		user, groups := devcluster.ServiceAccountUser(gatewayv1alpha1.DefaultSystemNamespace, name)
		return cluster.AddUser(user, groups...)
	}
	if ids.manager, err = sa("codevector-manager"); err != nil {
		return nil, err
	}
	if ids.gateway, err = sa("codevector-gateway"); err != nil {
		return nil, err
	}
	dev, err := cluster.AddUser(devcluster.DevUser)
	if err != nil {
		return nil, err
	}
	ids.kubeconfig = filepath.Join(cluster.StateDir, "kubeconfig")
	if err := devcluster.WriteKubeconfig(ids.kubeconfig, dev, "codevector-dev", devcluster.DevUser, devcluster.DevNamespace); err != nil {
		return nil, err
	}
	// A cluster-admin kubeconfig, for looking under the hood (README:
	// troubleshooting). Not printed: day-to-day work uses the dev user.
	if err := devcluster.WriteKubeconfig(filepath.Join(cluster.StateDir, "admin.kubeconfig"), cluster.Admin, "codevector-dev-admin", "admin", devcluster.DevNamespace); err != nil {
		return nil, err
	}
	return ids, nil
}

// newDevLogger sets up human-readable logs on stderr for both halves of
// the process: the manager (controller-runtime's logr) and the gateway
// (slog).
func newDevLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	zl := zapcore.InfoLevel
	if l < slog.LevelInfo {
		zl = zapcore.DebugLevel
	} else if l > slog.LevelInfo {
		zl = zapcore.Level(l / 4) // slog's warn (4) and error (8) are zap's 1 and 2
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(w), zap.ConsoleEncoder(), zap.Level(zl)))
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
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
	platform := k8sVersion + "-" + runtime.GOOS + "-" + runtime.GOARCH
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

// devProviders is the providers configuration of dev mode. With
// OPENAI_API_KEY set, openai is api.openai.com; without it, openai is the
// built-in echo stand-in, served here on a loopback port. With
// ANTHROPIC_API_KEY set, anthropic is api.anthropic.com and claude-*
// models sent to the openai route go there (as the docs' example does).
// notes are the lines start-up prints about it.
func devProviders(getenv func(string) string) (p *proxy.Providers, notes []string, stop func(), err error) {
	stop = func() {}
	openaiKey := strings.TrimSpace(getenv("OPENAI_API_KEY")) != ""
	anthropicKey := strings.TrimSpace(getenv("ANTHROPIC_API_KEY")) != ""

	var b strings.Builder
	b.WriteString("providers:\n  openai:\n")
	if openaiKey {
		b.WriteString("    baseURL: https://api.openai.com\n    credential: {env: OPENAI_API_KEY}\n")
		notes = append(notes, "openai     https://api.openai.com (OPENAI_API_KEY)")
	} else {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, nil, stop, fmt.Errorf("starting the echo stand-in: %w", err)
		}
		srv := &http.Server{Handler: &echo.Handler{ChunkDelay: 20 * time.Millisecond}, ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = srv.Serve(ln) }()
		stop = func() { _ = srv.Close() }
		fmt.Fprintf(&b, "    baseURL: http://%s\n", ln.Addr())
		notes = append(notes, fmt.Sprintf("openai     DEV STAND-IN: the built-in echo upstream at http://%s answers \"Echo: <your last message>\" (streaming too). Not a model. Set OPENAI_API_KEY for api.openai.com.", ln.Addr()))
	}
	if anthropicKey {
		b.WriteString("    models:\n      \"claude-*\": anthropic\n")
		b.WriteString("  anthropic:\n    baseURL: https://api.anthropic.com\n")
		b.WriteString("    credential: {header: x-api-key, format: \"{value}\", env: ANTHROPIC_API_KEY}\n")
		b.WriteString("    headers: {anthropic-version: \"2023-06-01\"}\n")
		notes = append(notes, "anthropic  https://api.anthropic.com (ANTHROPIC_API_KEY); claude-* models on the openai route go there too")
	}
	if p, err = proxy.ParseProviders([]byte(b.String()), getenv); err != nil {
		stop()
		return nil, nil, func() {}, fmt.Errorf("dev providers: %w", err)
	}
	return p, notes, stop, nil
}

// forceStopOnSecondSignal kills etcd and kube-apiserver and exits when a
// second Ctrl-C (or SIGTERM) arrives while a clean stop is under way.
func forceStopOnSecondSignal(ctx context.Context, cluster *devcluster.Cluster, stderr io.Writer) {
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
`, base, devcluster.DevUser, kubeconfig)
	for _, n := range notes {
		fmt.Fprintf(w, "  %s\n", n)
	}
	fmt.Fprint(w, "\nPress Ctrl-C to stop; keys are kept for the next start.\n")
}
