package commands

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/server"
)

func newGatewayCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gateway --providers FILE",
		Short: "Run the authenticating LLM gateway, its console and docs",
		Args:  cobra.NoArgs,
	}
	fs := cmd.Flags()
	var (
		o             server.Options
		kubeconfig    string
		listen        string
		metricsListen string
		providersFile string
		namespaces    string
		logLevel      string
		consoleAuth   string
		proxyCIDRs    string
		csrfKeyFile   string
		clientSecret  string
		oidcScopes    string
		qps           float64
		burst         int
		tarpitDelay   time.Duration
		trustedCIDRs  string
		maxKeys       int
		peers         string
		budgetFailure string
		limitsFailure string
		staleIndex    string
	)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then in-cluster config)")
	fs.StringVar(&listen, "listen", ":8080", "Address to serve the gateway, console and docs on")
	fs.StringVar(&metricsListen, "metrics-listen", "127.0.0.1:9090", "Address to serve Prometheus /metrics on, never the --listen one (its series name key owners and namespaces): loopback by default; in a cluster the pod's port for the scraper, e.g. :9090. Empty serves no metrics")
	fs.StringVar(&providersFile, "providers", "", "Providers file (YAML): base URLs, credentials, model routes (required)")
	fs.StringVar(&namespaces, "namespaces", "", "Comma-separated namespaces whose APIKeys are accepted (default: all)")
	fs.DurationVar(&o.LastUsedInterval, "last-used-interval", 30*time.Second, "How often last-use times are written to APIKey status")
	fs.StringVar(&o.SystemNamespace, "system-namespace", gatewayv1alpha1.DefaultSystemNamespace, "Namespace of the hash Secrets")
	fs.IntVar(&o.Auth.Argon2Concurrency, "argon2-concurrency", 2, "argon2id verifications at once (each holds the hash's memory, 19 MiB by default)")
	fs.Int64Var(&o.Proxy.MaxRequestBodyBytes, "max-request-body", proxy.DefaultMaxRequestBodyBytes, "Largest request body accepted, in bytes")
	fs.DurationVar(&o.Proxy.UpstreamHeaderTimeout, "upstream-timeout", 5*time.Minute, "How long to wait for a provider's response headers (long for slow, non-streamed reasoning models)")
	fs.StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error")
	fs.StringVar(&consoleAuth, "console-auth", string(console.AuthHeader), "How the console knows its users: oidc (it signs them in with your identity provider; see --oidc-*), header (a sign-in proxy's headers, from --console-proxy-cidrs only) or dev (everyone is "+console.DevUser+"; local use only)")
	fs.StringVar(&o.Console.Namespace, "console-namespace", "", "Namespace of the keys created in the console (default: the system namespace)")
	fs.StringVar(&proxyCIDRs, "console-proxy-cidrs", "", "Header mode: comma-separated addresses or CIDRs of the sign-in proxy, the only peers whose identity headers count (default: none, so the console refuses everyone; loopback is not trusted unless listed, since kubectl port-forward connects from there)")
	fs.StringVar(&o.Console.UserHeader, "console-user-header", console.DefaultUserHeader, "Header mode: the one header that names the user (oauth2-proxy: X-Forwarded-User, or X-Forwarded-Email)")
	fs.StringVar(&o.Console.GroupsHeader, "console-groups-header", "", "Header mode: the header with the user's groups, comma-separated (default: none, groups never come from headers; set it only if the proxy always sets it, e.g. X-Forwarded-Groups)")
	fs.StringVar(&o.Console.AdminGroup, "admin-group", gatewayv1alpha1.DefaultAdminGroup, "Group whose members see and revoke everyone's keys in the console")
	fs.StringVar(&csrfKeyFile, "console-csrf-key-file", "", "File with a secret (32+ bytes) that signs the console's CSRF tokens and seals its session cookies; give all replicas the same one (default: random per process, fine for one replica)")
	fs.StringVar(&o.Console.OIDC.IssuerURL, "oidc-issuer-url", "", "OIDC mode: the identity provider's issuer URL (its discovery document is under /.well-known/openid-configuration)")
	fs.StringVar(&o.Console.OIDC.ClientID, "oidc-client-id", "", "OIDC mode: the console's client ID at the provider")
	fs.StringVar(&clientSecret, "oidc-client-secret-file", "", "OIDC mode: file with the client's secret (mount it from a Secret)")
	fs.StringVar(&o.Console.OIDC.RedirectURL, "oidc-redirect-url", "", "OIDC mode: the callback registered with the provider, https://<gateway host>"+console.CallbackPath+" (plain http only on localhost)")
	fs.StringVar(&oidcScopes, "oidc-scopes", strings.Join(console.DefaultOIDCScopes, ","), "OIDC mode: comma-separated scopes to ask for (openid is always asked for; add groups for Dex)")
	fs.StringVar(&o.Console.OIDC.UserClaim, "oidc-user-claim", console.DefaultUserClaim, "OIDC mode: the ID token claim that names the user (owner of keys)")
	fs.StringVar(&o.Console.OIDC.GroupsClaim, "oidc-groups-claim", console.DefaultGroupsClaim, "OIDC mode: the claim with the user's groups (ID token, else userinfo)")
	fs.DurationVar(&o.Console.OIDC.SessionLifetime, "console-session-lifetime", console.DefaultSessionLifetime, "OIDC mode: how long a console sign-in lasts")
	fs.IntVar(&maxKeys, "max-keys-per-user", console.DefaultMaxKeysPerUser, "Most keys a user may hold that are not revoked, expired or failed (in every watched namespace) before the console refuses to create another; 0 means no limit")
	fs.DurationVar(&tarpitDelay, "tarpit-delay", time.Second, "How long the refusals of a client that keeps failing authentication (past 100, refilled 10/s) wait before they are answered; 0 answers at once")
	fs.StringVar(&trustedCIDRs, "trusted-proxy-cidrs", "", "Comma-separated addresses or CIDRs of the load balancers or ingress in front of the gateway; from them X-Forwarded-For names the client (its rightmost untrusted hop) for failure limits and the tarpit. Default: none, the peer is the client")
	fs.DurationVar(&o.Timeouts.ReadHeader, "read-header-timeout", server.DefaultTimeouts.ReadHeader, "How long a client may take to send a request's line and headers")
	fs.DurationVar(&o.Timeouts.Body, "request-body-timeout", server.DefaultTimeouts.Body, "How long a client may take to send a request body, on every route (counted from the end of the headers; responses may stream for longer)")
	fs.DurationVar(&o.Timeouts.Idle, "idle-timeout", server.DefaultTimeouts.Idle, "How long a keep-alive connection may wait for its next request")
	fs.IntVar(&o.MaxConnsPerClient, "max-conns-per-client", server.DefaultMaxConnsPerClient, "Connections one client address (an IPv6 /64) may hold open at once; more are closed on arrival. Behind a load balancer, all clients share its address: size it for the balancer. 0 means no cap")
	fs.StringVar(&o.Peers.Listen, "peer-listen", "", "Address this replica serves its peers on, for per-key limits and budgets counted across replicas (default: none, a single replica)")
	fs.StringVar(&o.Peers.Advertise, "peer-advertise", "", "Address the peers reach this replica at (default: --peer-listen when it names a host, else $POD_IP with its port)")
	fs.StringVar(&peers, "peers", "", "Comma-separated HOST:PORT of the other replicas' peer listeners (a fixed list; see --peer-discovery)")
	fs.StringVar(&o.Peers.Discovery, "peer-discovery", "", "kubernetes: the peers are the ready pods in the system namespace matching --peer-selector")
	fs.StringVar(&o.Peers.Selector, "peer-selector", "", "Label selector of the gateway pods, for --peer-discovery kubernetes (e.g. app.kubernetes.io/name=codevector-gateway)")
	fs.BoolVar(&o.Peers.DisableProofSharing, "no-peer-proofs", false, "Do not share verified-key proofs with the peers: every replica, a new one too, verifies each key with argon2id itself")
	fs.StringVar(&budgetFailure, "budget-failure-mode", string(policy.FailClosed), "What a key with a budget gets when its counters cannot be reached (a peer down): closed refuses with 503 and Retry-After, so no request spends uncounted money; open serves it uncounted")
	fs.StringVar(&limitsFailure, "limits-failure-mode", string(policy.FailOpen), "The same for keys with per-minute or concurrency limits and no budget: open (default) serves them uncounted, so a counting problem is not an outage; closed refuses with 503")
	fs.StringVar(&staleIndex, "stale-index", string(server.StaleServe), "What a replica does once it has heard from neither the API server nor a peer that does for --stale-index-after: serve (default) keeps serving from its cached keys, so a key revoked meanwhile may still work there; refuse answers 503 index_stale and reports not ready until it hears again")
	fs.DurationVar(&o.StaleIndexAfter, "stale-index-after", server.DefaultStaleIndexAfter, "How long a replica may hear from neither the API server (watch events, bookmarks, its probe) nor a current peer before its index counts as stale (/readyz, codevector_gateway_index_stale_seconds, --stale-index)")
	fs.Float64Var(&qps, "kube-api-qps", server.DefaultQPS, "Sustained requests per second to the API server (watches, last-use writes, console)")
	fs.IntVar(&burst, "kube-api-burst", server.DefaultBurst, "Burst of requests to the API server")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stderr := cmd.Context(), cmd.ErrOrStderr()
		log, err := newLogger(stderr, logLevel)
		if err != nil {
			return err
		}
		setSoftMemoryLimit(log)
		if providersFile == "" {
			return fmt.Errorf("--providers is required: a YAML file naming the LLM providers (see README)")
		}
		if o.Providers, err = providers.LoadProviders(providersFile, os.Getenv); err != nil {
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
		if o.BudgetFailureMode, err = policy.ParseFailureMode(budgetFailure); err != nil {
			return fmt.Errorf("--budget-failure-mode: %w", err)
		}
		if o.LimitsFailureMode, err = policy.ParseFailureMode(limitsFailure); err != nil {
			return fmt.Errorf("--limits-failure-mode: %w", err)
		}
		if o.StaleIndex, err = server.ParseStaleIndexMode(staleIndex); err != nil {
			return fmt.Errorf("--stale-index: %w", err)
		}
		if o.StaleIndexAfter <= 0 {
			return fmt.Errorf("--stale-index-after %v: want a positive duration", o.StaleIndexAfter)
		}
		o.Namespaces = splitList(namespaces)
		o.Peers.Static = splitList(peers)
		o.PodIP = os.Getenv("POD_IP")
		o.Auth.RefusalDelay = tarpitDelay
		if tarpitDelay == 0 {
			o.Auth.RefusalDelay = -1 // off; zero in Options means the default
		}
		if o.Auth.TrustedProxies, err = console.ParseCIDRs(trustedCIDRs); err != nil {
			return fmt.Errorf("--trusted-proxy-cidrs: %w", err)
		}
		o.Logger = log
		if o.Console.Auth, err = console.ParseAuthMode(consoleAuth); err != nil {
			return err
		}
		if o.Console.Auth != console.AuthOIDC && (o.Console.OIDC.IssuerURL != "" || o.Console.OIDC.ClientID != "") {
			return fmt.Errorf("--oidc-issuer-url and --oidc-client-id are set, but --console-auth is %s: add --console-auth=oidc", o.Console.Auth)
		}
		if o.Console.ProxyCIDRs, err = console.ParseCIDRs(proxyCIDRs); err != nil {
			return fmt.Errorf("--console-proxy-cidrs: %w", err)
		}
		switch {
		case maxKeys < 0:
			return fmt.Errorf("--max-keys-per-user %d: want 0 (no limit) or a positive number", maxKeys)
		case maxKeys == 0:
			o.Console.MaxKeysPerUser = -1 // no limit; zero in Options means the default
		default:
			o.Console.MaxKeysPerUser = maxKeys
		}
		o.Console.OIDC.Scopes = splitList(oidcScopes)
		if clientSecret != "" {
			secret, err := os.ReadFile(clientSecret)
			if err != nil {
				return fmt.Errorf("--oidc-client-secret-file: %w", err)
			}
			if o.Console.OIDC.ClientSecret = strings.TrimSpace(string(secret)); o.Console.OIDC.ClientSecret == "" {
				return fmt.Errorf("--oidc-client-secret-file %s is empty", clientSecret)
			}
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
		if metricsListen != "" {
			if o.MetricsListener, err = net.Listen("tcp", metricsListen); err != nil {
				return fmt.Errorf("--metrics-listen: listening on %s: %w (is another process using the port?)", metricsListen, err)
			}
			defer o.MetricsListener.Close()
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
	return cmd
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
