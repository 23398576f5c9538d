package commands

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/codevector/codevector/gateway/console"
	"github.com/codevector/codevector/gateway/policy"
	"github.com/codevector/codevector/gateway/server"
)

func parseGatewayFlags(t *testing.T, args ...string) (*gatewayFlags, error) {
	t.Helper()
	var f gatewayFlags
	fs := pflag.NewFlagSet("gateway", pflag.ContinueOnError)
	fs.SetOutput(new(strings.Builder))
	f.register(fs)
	return &f, fs.Parse(args)
}

// TestGatewayFlagsLandInOptions: each flag's value reaches the options the
// gateway is built from, parsed; 0 for a cap, a limit or the tarpit means
// off, which the options spell as negative (their zero means the default).
func TestGatewayFlagsLandInOptions(t *testing.T) {
	dir := t.TempDir()
	csrf := filepath.Join(dir, "csrf")
	if err := os.WriteFile(csrf, []byte(strings.Repeat("k", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := parseGatewayFlags(t,
		"--namespaces", "team-a, ,team-b", "--peers", "10.0.0.1:7946,10.0.0.2:7946",
		"--max-conns-per-client", "0", "--tarpit-delay", "0", "--max-keys-per-user", "0",
		"--budget-failure-mode", "open", "--stale-index", "refuse", "--console-auth", "oidc",
		"--trusted-proxy-cidrs", "10.1.0.0/16,192.0.2.7", "--console-csrf-key-file", csrf,
		"--stale-index-after", "5s")
	if err != nil {
		t.Fatal(err)
	}
	f.providersFile = "providers.yaml"
	if err := f.check(); err != nil {
		t.Fatal(err)
	}
	o := f.opts
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"namespaces", strings.Join(o.Namespaces, "|"), "team-a|team-b"},
		{"peers", len(o.Peers.Static), 2},
		{"max conns per client (0: no cap)", o.MaxConnsPerClient, -1},
		{"refusal delay (0: no tarpit)", o.Auth.RefusalDelay, time.Duration(-1)},
		{"max keys per user (0: no limit)", o.Console.MaxKeysPerUser, -1},
		{"budget failure mode", o.BudgetFailureMode, policy.FailOpen},
		{"limits failure mode (default)", o.LimitsFailureMode, policy.FailOpen},
		{"stale index", o.StaleIndex, server.StaleRefuse},
		{"console auth", o.Console.Auth, console.AuthOIDC},
		{"trusted proxies", len(o.Auth.TrustedProxies), 2},
		{"csrf key (trimmed)", string(o.Console.CSRFKey), strings.Repeat("k", 32)},
		{"stale index after", o.StaleIndexAfter, 5 * time.Second},
		{"oidc scopes (default)", strings.Join(o.Console.OIDC.Scopes, ","), strings.Join(console.DefaultOIDCScopes, ",")},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", c.what, c.got, c.want)
		}
	}

	// Unset, each keeps its documented default.
	f, err = parseGatewayFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if f.opts.MaxConnsPerClient != server.DefaultMaxConnsPerClient || f.opts.Auth.RefusalDelay != time.Second ||
		f.opts.Console.MaxKeysPerUser != console.DefaultMaxKeysPerUser || f.opts.BudgetFailureMode != policy.FailClosed {
		t.Errorf("defaults: %+v", f.opts)
	}
}

// TestGatewayFlagsRefuseBadValues: a bad value stops the command at parse
// time, naming its flag and what it wants.
func TestGatewayFlagsRefuseBadValues(t *testing.T) {
	dir := t.TempDir()
	short := filepath.Join(dir, "short")
	empty := filepath.Join(dir, "empty")
	os.WriteFile(short, []byte("too short"), 0o600)
	os.WriteFile(empty, []byte("\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-conns-per-client", "-3"}, `"--max-conns-per-client" flag: -3 is negative: want 0 (off) or more`},
		{[]string{"--tarpit-delay", "-1s"}, `"--tarpit-delay" flag: -1s is negative`},
		{[]string{"--max-keys-per-user", "many"}, `"--max-keys-per-user" flag`},
		{[]string{"--idle-timeout", "0s"}, `"--idle-timeout" flag: 0s: want a positive duration`},
		{[]string{"--stale-index-after", "-5s"}, "want a positive duration"},
		{[]string{"--budget-failure-mode", "sometimes"}, `"--budget-failure-mode" flag: want closed or open`},
		{[]string{"--limits-failure-mode", "never"}, `"--limits-failure-mode" flag: want open or closed`},
		{[]string{"--stale-index", "maybe"}, `"--stale-index" flag`},
		{[]string{"--console-auth", "basic"}, "want oidc"},
		{[]string{"--trusted-proxy-cidrs", "10.0.0.0/99"}, `"--trusted-proxy-cidrs" flag`},
		{[]string{"--console-csrf-key-file", short}, "--console-csrf-key-file: " + short + ": the secret must be at least 32 bytes"},
		{[]string{"--oidc-client-secret-file", empty}, "is empty"},
		{[]string{"--oidc-client-secret-file", filepath.Join(dir, "missing")}, "no such file"},
	} {
		f, err := parseGatewayFlags(t, append(c.args, "--providers", "p.yaml")...)
		if err == nil {
			err = f.check() // the secret files are read when the command runs
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: got %v, want an error containing %q", c.args, err, c.want)
		}
	}
	f, err := parseGatewayFlags(t, "--oidc-issuer-url", "https://id.example", "--providers", "p.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.check(); err == nil || !strings.Contains(err.Error(), "add --console-auth=oidc") {
		t.Errorf("OIDC flags without --console-auth=oidc: got %v", err)
	}
}
