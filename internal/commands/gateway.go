package commands

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/server"
)

func runGateway(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		o             server.Options
		kubeconfig    string
		listen        string
		providersFile string
		namespaces    string
		logLevel      string
		consoleAuth   string
		proxyCIDRs    string
		csrfKeyFile   string
		qps           float64
		burst         int
		tarpitDelay   time.Duration
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then in-cluster config)")
	fs.StringVar(&listen, "listen", ":8080", "Address to serve the gateway, console and docs on")
	fs.StringVar(&providersFile, "providers", "", "Providers file (YAML): base URLs, credentials, model routes (required)")
	fs.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces whose APIKeys are accepted (default: all)")
	fs.DurationVar(&o.LastUsedInterval, "last-used-interval", 30*time.Second, "How often last-use times are written to APIKey status")
	fs.StringVar(&o.SystemNamespace, "system-namespace", gatewayv1alpha1.DefaultSystemNamespace, "Namespace of the hash Secrets")
	fs.IntVar(&o.Auth.Argon2Concurrency, "argon2-concurrency", 2, "argon2id verifications at once (each holds the hash's memory, 19 MiB by default)")
	fs.Int64Var(&o.Proxy.MaxRequestBodyBytes, "max-request-body", proxy.DefaultMaxRequestBodyBytes, "Largest request body accepted, in bytes")
	fs.DurationVar(&o.Proxy.UpstreamHeaderTimeout, "upstream-timeout", 5*time.Minute, "How long to wait for a provider's response headers (long for slow, non-streamed reasoning models)")
	fs.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	fs.StringVar(&consoleAuth, "console-auth", string(console.AuthHeader), "How the console knows its users: header (X-Forwarded-User/-Email/-Groups from a sign-in proxy) or dev (everyone is "+console.DevUser+"; local use only)")
	fs.StringVar(&o.Console.Namespace, "console-namespace", "", "Namespace of the keys created in the console (default: the system namespace)")
	fs.StringVar(&proxyCIDRs, "console-proxy-cidrs", "127.0.0.1/32,::1/128", "Comma-separated addresses or CIDRs of the sign-in proxy; X-Forwarded-* headers from anywhere else are ignored")
	fs.StringVar(&o.Console.AdminGroup, "admin-group", gatewayv1alpha1.DefaultAdminGroup, "Group whose members see and revoke everyone's keys in the console")
	fs.StringVar(&csrfKeyFile, "console-csrf-key-file", "", "File with a secret (32+ bytes) that signs the console's CSRF tokens; give all replicas the same one (default: random per process, fine for one replica)")
	fs.DurationVar(&tarpitDelay, "tarpit-delay", time.Second, "How long the refusals of a client that keeps failing authentication (past 100, refilled 10/s) wait before they are answered; 0 answers at once")
	fs.DurationVar(&o.Timeouts.ReadHeader, "read-header-timeout", server.DefaultTimeouts.ReadHeader, "How long a client may take to send a request's line and headers")
	fs.DurationVar(&o.Timeouts.Body, "request-body-timeout", server.DefaultTimeouts.Body, "How long a client may take to send a request body, on every route (counted from the end of the headers; responses may stream for longer)")
	fs.DurationVar(&o.Timeouts.Idle, "idle-timeout", server.DefaultTimeouts.Idle, "How long a keep-alive connection may wait for its next request")
	fs.IntVar(&o.MaxConnsPerClient, "max-conns-per-client", server.DefaultMaxConnsPerClient, "Connections one client address (an IPv6 /64) may hold open at once; more are closed on arrival. Behind a load balancer, all clients share its address: size it for the balancer. 0 means no cap")
	fs.Float64Var(&qps, "kube-api-qps", server.DefaultQPS, "Sustained requests per second to the API server (watches, last-use writes, console)")
	fs.IntVar(&burst, "kube-api-burst", server.DefaultBurst, "Burst of requests to the API server")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log, err := newLogger(stderr, logLevel)
	if err != nil {
		return err
	}
	if providersFile == "" {
		return fmt.Errorf("--providers is required: a YAML file naming the LLM providers (see README)")
	}
	if o.Providers, err = proxy.LoadProviders(providersFile, os.Getenv); err != nil {
		return err
	}
	if o.MaxConnsPerClient < 0 {
		return fmt.Errorf("--max-conns-per-client %d: want 0 (no cap) or more", o.MaxConnsPerClient)
	}
	if o.MaxConnsPerClient == 0 {
		o.MaxConnsPerClient = -1 // no cap; zero in Options means the default
	}
	for name, d := range map[string]time.Duration{"read-header-timeout": o.Timeouts.ReadHeader, "request-body-timeout": o.Timeouts.Body, "idle-timeout": o.Timeouts.Idle} {
		if d <= 0 {
			return fmt.Errorf("--%s %v: want a positive duration", name, d)
		}
	}
	o.Namespaces = splitList(namespaces)
	o.Auth.RefusalDelay = tarpitDelay
	if tarpitDelay == 0 {
		o.Auth.RefusalDelay = -1 // off; zero in Options means the default
	}
	o.Logger = log
	if o.Console.Auth, err = console.ParseAuthMode(consoleAuth); err != nil {
		return err
	}
	if o.Console.ProxyCIDRs, err = console.ParseCIDRs(proxyCIDRs); err != nil {
		return fmt.Errorf("--console-proxy-cidrs: %w", err)
	}
	if csrfKeyFile != "" {
		key, err := os.ReadFile(csrfKeyFile)
		if err != nil {
			return fmt.Errorf("--console-csrf-key-file: %w", err)
		}
		if o.Console.CSRFKey = []byte(strings.TrimSpace(string(key))); len(o.Console.CSRFKey) < 32 {
			return fmt.Errorf("--console-csrf-key-file %s: the secret must be at least 32 bytes", csrfKeyFile)
		}
	}

	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = float32(qps), burst
	g, err := server.New(cfg, o)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w (is another process using the port?)", listen, err)
	}
	return g.Run(ctx, ln)
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
