package chaos

import (
	"context"
	"fmt"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// Prices of the fake provider's model, in dollars per million tokens: one
// price for input and output, so a dollar budget is a token budget.
const (
	pricePerMillion = 1000 // $0.001 a token
	nanoUSDPerToken = pricePerMillion * 1000
	model           = "gpt-4o"
	maxOutputTokens = 64
	replicaCount    = 3
	// flushInterval is the replicas' --last-used-interval, short so that
	// what a killed replica had not written to status.usage stays small.
	flushInterval = 2 * time.Second
)

// cluster is everything a run starts: the control plane, the manager and
// the gateway replicas as processes, the fake provider, and a proxy per
// replica in front of the API server.
type cluster struct {
	t      *testing.T
	env    *testenv.Env
	dir    string // logs and files of the run
	binary string
	ns     string
	// adminKubeconfig is a cluster admin's: the manager's, the CLI's.
	adminKubeconfig string

	mu     sync.Mutex // guards client, which an API server restart replaces
	client client.Client

	manager  *proc
	replicas []*replica
}

// replica is one gateway process with its own path to the API server.
type replica struct {
	name  string
	url   string
	proc  *proc
	proxy *testenv.StallProxy
}

func (c *cluster) kube() client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

func startCluster(t *testing.T, dir string) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dir, binary: filepath.Join(dir, "codevector")}
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	// The binary is large; the logs stay for a failed run's reader.
	t.Cleanup(func() { _ = os.Remove(c.binary) })
	build := exec.Command("go", "build", "-o", c.binary, ".")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building codevector: %v\n%s", err, out)
	}
	if c.env, err = testenv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.env.Stop() })
	c.client = c.env.Client
	c.ns = "chaos"
	if err := c.env.CreateNamespace(context.Background(), c.ns); err != nil {
		t.Fatal(err)
	}
	c.adminKubeconfig = c.env.KubeconfigFor(t, "chaos-admin", "system:masters")

	up := httptest.NewServer(&devmode.EchoUpstream{})
	t.Cleanup(up.Close)
	providers := filepath.Join(dir, "providers.yaml")
	yaml := fmt.Sprintf("providers:\n  openai:\n    baseURL: %s\n    pricing:\n      \"gpt-4o*\": {input: %d, output: %d}\n    maxOutputTokens:\n      \"gpt-4o*\": %d\n",
		up.URL, pricePerMillion, pricePerMillion, maxOutputTokens)
	if err := os.WriteFile(providers, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}

	// The manager hashes with argon2id's smallest parameters: on two
	// cores the gateways' verifications of a few hundred keys, three
	// times over, would otherwise be most of the CPU at start-up.
	c.manager = newProc(t, "manager", c.binary, filepath.Join(dir, "manager.log"), nil,
		"manager", "--kubeconfig", c.adminKubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--argon2-memory", fmt.Sprint(keys.MinMemoryKiB), "--argon2-time", "1")
	if err := c.manager.start(); err != nil {
		t.Fatal(err)
	}

	apiServer, err := url.Parse(c.env.Config.Host)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := os.ReadFile(c.adminKubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	peerAddrs := make([]string, replicaCount)
	for i := range peerAddrs {
		peerAddrs[i] = freeAddr(t, replicaIP(i))
	}
	for i := range replicaCount {
		r := &replica{name: fmt.Sprintf("gw-%d", i), proxy: testenv.NewStallProxy(t, apiServer.Host)}
		// The replica reaches the API server through its proxy: the same
		// certificates, another port on the same address.
		kubeconfig := filepath.Join(dir, r.name+".kubeconfig")
		if err := os.WriteFile(kubeconfig, []byte(strings.ReplaceAll(string(admin), apiServer.Host, r.proxy.Addr())), 0o600); err != nil {
			t.Fatal(err)
		}
		listen := freeAddr(t, replicaIP(i))
		r.url = "http://" + listen
		r.proc = newProc(t, r.name, c.binary, filepath.Join(dir, r.name+".log"), []string{"POD_NAME=" + r.name},
			"gateway", "--kubeconfig", kubeconfig, "--listen", listen, "--metrics-listen=",
			"--providers", providers, "--peer-listen", peerAddrs[i], "--peers", strings.Join(peerAddrs, ","),
			"--last-used-interval", flushInterval.String(),
			// The load comes from one address and keeps trying retired
			// keys: no tarpit and no cap on its connections.
			"--tarpit-delay", "0", "--max-conns-per-client", "0")
		c.replicas = append(c.replicas, r)
	}
	var wg sync.WaitGroup
	errs := make([]error, replicaCount)
	for i, r := range c.replicas {
		wg.Go(func() { errs[i] = c.startReplica(r) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// replicaIP is the loopback address of replica i (see freeAddr).
func replicaIP(i int) string { return fmt.Sprintf("127.0.77.%d", i+1) }

// startReplica starts r and waits until it is ready (its watches synced,
// its peers' credential read).
func (c *cluster) startReplica(r *replica) error {
	if err := r.proc.start(); err != nil {
		return err
	}
	if err := r.proc.waitReady(r.url+"/readyz", 2*time.Minute); err != nil {
		return fmt.Errorf("%s: %w; see %s", r.name, err, r.proc.logPath)
	}
	return nil
}

// stopAPIServer stops kube-apiserver (etcd keeps running) and returns a
// function that starts it again on the same port with the same
// certificates, and waits until it serves APIKeys again.
func (c *cluster) stopAPIServer() (restart func() error, err error) {
	api := c.env.ControlPlane.APIServer
	keep, err := os.MkdirTemp(c.dir, "apiserver-certs-")
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(api.CertDir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(api.CertDir, e.Name()))
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(keep, e.Name()), data, 0o600); err != nil {
			return nil, err
		}
	}
	// It would drain its watches for up to a minute; after two seconds it
	// is killed outright, which is the harsher outage anyway.
	api.StopTimeout = 2 * time.Second
	if err := api.Stop(); err != nil && !strings.Contains(err.Error(), "timeout waiting for process kube-apiserver to stop") {
		return nil, err
	}
	return func() error {
		api.CertDir = keep
		if err := api.Start(); err != nil {
			return fmt.Errorf("restarting kube-apiserver: %w", err)
		}
		// A restarted API server answers before it serves the CRD again:
		// wait until a fresh client lists APIKeys, and use that one.
		deadline := time.Now().Add(90 * time.Second)
		for {
			fresh, err := client.New(c.env.Config, client.Options{Scheme: c.env.Client.Scheme()})
			if err == nil {
				err = fresh.List(context.Background(), &gatewayv1alpha1.APIKeyList{}, client.Limit(1))
			}
			if err == nil {
				c.mu.Lock()
				c.client = fresh
				c.mu.Unlock()
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("kube-apiserver restarted but does not serve APIKeys: %w", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}, nil
}

// cli runs `codevector keys ARGS` as the admin, in the run's namespace,
// and returns its stdout, its stderr and whether it exited 0.
func (c *cluster) cli(timeout time.Duration, args ...string) (stdout, stderr string, ok bool) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.binary, append(append([]string{"keys"}, args...), "-n", c.ns, "--kubeconfig", c.adminKubeconfig)...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	c.appendCLILog(args, errOut.String(), err)
	return out.String(), errOut.String(), err == nil
}

// appendCLILog keeps what the CLI said on stderr (stdout is the key, by
// design) for the leak scan and the reader of a failed run.
func (c *cluster) appendCLILog(args []string, stderr string, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ferr := os.OpenFile(filepath.Join(c.dir, "cli.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if ferr != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "%s keys %s (exit: %v)\n%s\n", time.Now().UTC().Format(time.RFC3339Nano), strings.Join(args, " "), err, stderr)
}
