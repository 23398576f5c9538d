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
	o.Namespaces = splitList(namespaces)
	o.Logger = log

	cfg, err := restConfig(kubeconfig)
	if err != nil {
		return err
	}
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
