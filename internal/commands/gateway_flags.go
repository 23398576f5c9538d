package commands

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/pflag"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/proxy"
	"github.com/codevector/codevector/gateway/server"
)

// gatewayFlags are `codevector gateway`'s flags. Most land in server.Options
// directly, already parsed and checked (flagvalues.go); the rest are what
// the command itself needs to build a gateway: where the API server and
// the providers file are, where to listen and log.
type gatewayFlags struct {
	opts server.Options

	kubeconfig, providersFile string
	listen, metricsListen     string
	logLevel                  string
	qps                       float64
	burst                     int
	// secrets are read by check, not while flags are parsed, so that
	// --help with a deployment's args works where its files are absent.
	csrfKey, oidcClientSecret *secretFile
}

func (f *gatewayFlags) register(fs *pflag.FlagSet) {
	o := &f.opts
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "Path to a kubeconfig (default: $KUBECONFIG, then in-cluster config)")
	fs.StringVar(&f.listen, "listen", ":8080", "Address to serve the gateway, console and docs on")
	fs.StringVar(&f.metricsListen, "metrics-listen", "127.0.0.1:9090", "Address to serve Prometheus /metrics on, never the --listen one (its series name key owners and namespaces): loopback by default; in a cluster the pod's port for the scraper, e.g. :9090. Empty serves no metrics")
	fs.StringVar(&f.providersFile, "providers", "", "Providers file (YAML): base URLs, credentials, model routes (required)")
	fs.Var(list(&o.Namespaces, ""), "namespaces", "Comma-separated namespaces whose APIKeys are accepted (default: all)")
	fs.Var(positiveDuration(&o.LastUsedInterval, 30*time.Second), "last-used-interval", "How often last-use times are written to APIKey status")
	fs.StringVar(&o.SystemNamespace, "system-namespace", gatewayv1alpha1.DefaultSystemNamespace, "Namespace of the hash Secrets")
	fs.IntVar(&o.Auth.Argon2Concurrency, "argon2-concurrency", 2, "argon2id verifications at once (each holds the hash's memory, 19 MiB by default)")
	fs.Int64Var(&o.Proxy.MaxRequestBodyBytes, "max-request-body", proxy.DefaultMaxRequestBodyBytes, "Largest request body accepted, in bytes")
	fs.DurationVar(&o.Proxy.UpstreamHeaderTimeout, "upstream-timeout", 5*time.Minute, "How long to wait for a provider's response headers (long for slow, non-streamed reasoning models)")
	fs.StringVar(&f.logLevel, "log-level", "info", "Log level: debug, info, warn or error")

	// The console: who its users are, and how it keeps them.
	fs.Var(parsed(&o.Console.Auth, string(console.AuthHeader), console.ParseAuthMode), "console-auth", "How the console knows its users: oidc (it signs them in with your identity provider; see --oidc-*), header (a sign-in proxy's headers, from --console-proxy-cidrs only) or dev (everyone is "+console.DevUser+"; local use only)")
	fs.StringVar(&o.Console.Namespace, "console-namespace", "", "Namespace of the keys created in the console (default: the system namespace)")
	fs.Var(parsed(&o.Console.ProxyCIDRs, "", console.ParseCIDRs), "console-proxy-cidrs", "Header mode: comma-separated addresses or CIDRs of the sign-in proxy, the only peers whose identity headers count (default: none, so the console refuses everyone; loopback is not trusted unless listed, since kubectl port-forward connects from there)")
	fs.StringVar(&o.Console.UserHeader, "console-user-header", console.DefaultUserHeader, "Header mode: the one header that names the user (oauth2-proxy: X-Forwarded-User, or X-Forwarded-Email)")
	fs.StringVar(&o.Console.GroupsHeader, "console-groups-header", "", "Header mode: the header with the user's groups, comma-separated (default: none, groups never come from headers; set it only if the proxy always sets it, e.g. X-Forwarded-Groups)")
	fs.StringVar(&o.Console.AdminGroup, "admin-group", gatewayv1alpha1.DefaultAdminGroup, "Group whose members see and revoke everyone's keys in the console")
	f.csrfKey = &secretFile{minBytes: 32, load: func(s string) { o.Console.CSRFKey = []byte(s) }}
	fs.Var(f.csrfKey, "console-csrf-key-file", "File with a secret (32+ bytes) that signs the console's CSRF tokens and seals its session cookies; give all replicas the same one (default: random per process, fine for one replica)")
	fs.StringVar(&o.Console.OIDC.IssuerURL, "oidc-issuer-url", "", "OIDC mode: the identity provider's issuer URL (its discovery document is under /.well-known/openid-configuration)")
	fs.StringVar(&o.Console.OIDC.ClientID, "oidc-client-id", "", "OIDC mode: the console's client ID at the provider")
	f.oidcClientSecret = &secretFile{minBytes: 1, load: func(s string) { o.Console.OIDC.ClientSecret = s }}
	fs.Var(f.oidcClientSecret, "oidc-client-secret-file", "OIDC mode: file with the client's secret (mount it from a Secret)")
	fs.StringVar(&o.Console.OIDC.RedirectURL, "oidc-redirect-url", "", "OIDC mode: the callback registered with the provider, https://<gateway host>"+console.CallbackPath+" (plain http only on localhost)")
	fs.Var(list(&o.Console.OIDC.Scopes, strings.Join(console.DefaultOIDCScopes, ",")), "oidc-scopes", "OIDC mode: comma-separated scopes to ask for (openid is always asked for; add groups for Dex)")
	fs.StringVar(&o.Console.OIDC.UserClaim, "oidc-user-claim", console.DefaultUserClaim, "OIDC mode: the ID token claim that names the user (owner of keys)")
	fs.StringVar(&o.Console.OIDC.GroupsClaim, "oidc-groups-claim", console.DefaultGroupsClaim, "OIDC mode: the claim with the user's groups (ID token, else userinfo)")
	fs.DurationVar(&o.Console.OIDC.SessionLifetime, "console-session-lifetime", console.DefaultSessionLifetime, "OIDC mode: how long a console sign-in lasts")
	fs.Var(zeroMeansOff(&o.Console.MaxKeysPerUser, console.DefaultMaxKeysPerUser), "max-keys-per-user", "Most keys a user may hold that are not revoked, expired or failed (in every watched namespace) before the console refuses to create another; 0 means no limit")

	// The edge: what one client may cost the gateway.
	fs.Var(zeroMeansOff(&o.Auth.RefusalDelay, time.Second), "tarpit-delay", "How long the refusals of a client that keeps failing authentication (past 100, refilled 10/s) wait before they are answered; 0 answers at once")
	fs.Var(parsed(&o.Auth.TrustedProxies, "", console.ParseCIDRs), "trusted-proxy-cidrs", "Comma-separated addresses or CIDRs of the load balancers or ingress in front of the gateway; from them X-Forwarded-For names the client (its rightmost untrusted hop) for failure limits and the tarpit. Default: none, the peer is the client")
	fs.Var(positiveDuration(&o.Timeouts.ReadHeader, server.DefaultTimeouts.ReadHeader), "read-header-timeout", "How long a client may take to send a request's line and headers")
	fs.Var(positiveDuration(&o.Timeouts.Body, server.DefaultTimeouts.Body), "request-body-timeout", "How long a client may take to send a request body, on every route (counted from the end of the headers; responses may stream for longer)")
	fs.Var(positiveDuration(&o.Timeouts.Idle, server.DefaultTimeouts.Idle), "idle-timeout", "How long a keep-alive connection may wait for its next request")
	fs.Var(zeroMeansOff(&o.MaxConnsPerClient, server.DefaultMaxConnsPerClient), "max-conns-per-client", "Connections one client address (an IPv6 /64) may hold open at once; more are closed on arrival. Behind a load balancer, all clients share its address: size it for the balancer. 0 means no cap")

	// The peer mesh, and what a replica does when it cannot count or hear.
	fs.StringVar(&o.Peers.Listen, "peer-listen", "", "Address this replica serves its peers on, for per-key limits and budgets counted across replicas (default: none, a single replica)")
	fs.StringVar(&o.Peers.Advertise, "peer-advertise", "", "Address the peers reach this replica at (default: --peer-listen when it names a host, else $POD_IP with its port)")
	fs.Var(list(&o.Peers.Static, ""), "peers", "Comma-separated HOST:PORT of the other replicas' peer listeners (a fixed list; see --peer-discovery)")
	fs.StringVar(&o.Peers.Discovery, "peer-discovery", "", "kubernetes: the peers are the ready pods in the system namespace matching --peer-selector")
	fs.StringVar(&o.Peers.Selector, "peer-selector", "", "Label selector of the gateway pods, for --peer-discovery kubernetes (e.g. app.kubernetes.io/name=codevector-gateway)")
	fs.BoolVar(&o.Peers.DisableProofSharing, "no-peer-proofs", false, "Do not share verified-key proofs with the peers: every replica, a new one too, verifies each key with argon2id itself")
	fs.Var(oneOf(&o.BudgetFailureMode, policy.FailClosed, policy.FailClosed, policy.FailOpen), "budget-failure-mode", "What a key with a budget gets when its counters cannot be reached (a peer down): closed refuses with 503 and Retry-After, so no request spends uncounted money; open serves it uncounted")
	fs.Var(oneOf(&o.LimitsFailureMode, policy.FailOpen, policy.FailOpen, policy.FailClosed), "limits-failure-mode", "The same for keys with per-minute or concurrency limits and no budget: open (default) serves them uncounted, so a counting problem is not an outage; closed refuses with 503")
	fs.Var(parsed(&o.StaleIndex, string(server.StaleServe), server.ParseStaleIndexMode), "stale-index", "What a replica does once it has heard from neither the API server nor a peer that does for --stale-index-after: serve (default) keeps serving from its cached keys, so a key revoked meanwhile may still work there; refuse answers 503 index_stale and reports not ready until it hears again")
	fs.Var(positiveDuration(&o.StaleIndexAfter, server.DefaultStaleIndexAfter), "stale-index-after", "How long a replica may hear from neither the API server (watch events, bookmarks, its probe) nor a current peer before its index counts as stale (/readyz, codevector_gateway_index_stale_seconds, --stale-index)")
	fs.Float64Var(&f.qps, "kube-api-qps", server.DefaultQPS, "Sustained requests per second to the API server (watches, last-use writes, console)")
	fs.IntVar(&f.burst, "kube-api-burst", server.DefaultBurst, "Burst of requests to the API server")
}

// check reads the secret files and refuses what no single flag can see
// wrong: combinations.
func (f *gatewayFlags) check() error {
	for name, secret := range map[string]*secretFile{"--console-csrf-key-file": f.csrfKey, "--oidc-client-secret-file": f.oidcClientSecret} {
		if err := secret.read(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	o := &f.opts
	if f.providersFile == "" {
		return fmt.Errorf("--providers is required: a YAML file naming the LLM providers (see README)")
	}
	if o.Console.Auth != console.AuthOIDC && (o.Console.OIDC.IssuerURL != "" || o.Console.OIDC.ClientID != "") {
		return fmt.Errorf("--oidc-issuer-url and --oidc-client-id are set, but --console-auth is %s: add --console-auth=oidc", o.Console.Auth)
	}
	return nil
}
