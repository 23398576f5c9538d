package chaos

import (
	"context"
	"fmt"
	"net"
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
	// discovery is how the replicas find each other: "static" (--peers)
	// or "kubernetes" (--peer-discovery kubernetes over Pods this harness
	// keeps, as a kubelet would; kubelet.go).
	discovery string
	record    func(Record) // adds to the run's history
}

// replica is one gateway process with its own path to the API server.
type replica struct {
	name  string
	ip    string // its loopback address, its pod's IP
	url   string
	proc  *proc
	proxy *testenv.StallProxy
}

func (c *cluster) kube() client.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.client
}

// startCluster starts what a run needs; record takes the fake provider's
// and the kubelet's records.
func startCluster(t *testing.T, dir, discovery string, record func(Record)) *cluster {
	t.Helper()
	c := &cluster{t: t, dir: dir, binary: filepath.Join(dir, "codevector"), discovery: discovery, record: record}
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
	if c.env, err = testenv.StartWith(context.Background(), testenv.Options{RestartableEtcd: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.env.Stop() })
	c.client = c.env.Client
	c.ns = "chaos"
	if err := c.env.CreateNamespace(context.Background(), c.ns); err != nil {
		t.Fatal(err)
	}
	c.adminKubeconfig = c.env.KubeconfigFor(t, "chaos-admin", "system:masters")

	up := httptest.NewServer(&provider{echo: &devmode.EchoUpstream{}, record: record})
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
	// The replicas run as the gateway's service account, bound by the
	// RBAC the product ships (devmode.Install applied it): a fault that
	// needs a verb the role lacks shows as a failure here too.
	gwUser, gwGroups := devmode.ServiceAccountUser(gatewayv1alpha1.DefaultSystemNamespace, "codevector-gateway")
	gw, err := os.ReadFile(c.env.KubeconfigFor(t, gwUser, gwGroups...))
	if err != nil {
		t.Fatal(err)
	}
	peerAddrs := c.peerAddrs(t)
	for i := range replicaCount {
		r := &replica{name: fmt.Sprintf("gw-%d", i), ip: replicaIP(i), proxy: testenv.NewStallProxy(t, apiServer.Host)}
		// The replica reaches the API server through its proxy: the same
		// certificates, another port on the same address.
		kubeconfig := filepath.Join(dir, r.name+".kubeconfig")
		if err := os.WriteFile(kubeconfig, []byte(strings.ReplaceAll(string(gw), apiServer.Host, r.proxy.Addr())), 0o600); err != nil {
			t.Fatal(err)
		}
		listen := freeAddr(t, replicaIP(i))
		r.url = "http://" + listen
		peerFlags := []string{"--peer-listen", peerAddrs[i], "--peers", strings.Join(peerAddrs, ",")}
		if c.discovery == discoveryKubernetes {
			peerFlags = append(peerFlags[:2], "--peer-discovery", "kubernetes", "--peer-selector", podSelector)
		}
		r.proc = newProc(t, r.name, c.binary, filepath.Join(dir, r.name+".log"), []string{"POD_NAME=" + r.name, "POD_IP=" + r.ip},
			append(append([]string{"gateway", "--kubeconfig", kubeconfig, "--listen", listen, "--metrics-listen=",
				"--providers", providers}, peerFlags...),
				"--last-used-interval", flushInterval.String(),
				// The load comes from one address and keeps trying retired
				// keys: no tarpit and no cap on its connections.
				"--tarpit-delay", "0", "--max-conns-per-client", "0")...)
		c.replicas = append(c.replicas, r)
	}
	if c.discovery == discoveryKubernetes {
		c.startKubelet()
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

// peerAddrs are the replicas' peer listen addresses: any free port on each
// replica's address with static peers, one port free on all of them with
// kubernetes discovery (the peers are pod IPs on --peer-listen's port).
func (c *cluster) peerAddrs(t *testing.T) []string {
	addrs := make([]string, replicaCount)
	if c.discovery != discoveryKubernetes {
		for i := range addrs {
			addrs[i] = freeAddr(t, replicaIP(i))
		}
		return addrs
	}
	for range 20 {
		_, port, err := net.SplitHostPort(freeAddr(t, replicaIP(0)))
		if err != nil {
			t.Fatal(err)
		}
		free := true
		for i := range addrs {
			addrs[i] = net.JoinHostPort(replicaIP(i), port)
			ln, err := net.Listen("tcp", addrs[i])
			if err != nil {
				free = false
				break
			}
			ln.Close()
		}
		if free {
			return addrs
		}
	}
	t.Fatal("no port free on every replica's address in 20 tries")
	return nil
}

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
		return c.waitServing("kube-apiserver restarted")
	}, nil
}

// restartEtcd SIGKILLs etcd, waits down, starts it again on its data and
// waits until the API server serves APIKeys from it.
func (c *cluster) restartEtcd(down time.Duration) error {
	if err := c.env.KillEtcd(); err != nil {
		return err
	}
	time.Sleep(down)
	if err := c.env.StartEtcd(); err != nil {
		return err
	}
	return c.waitServing("etcd restarted")
}

// waitServing waits until a fresh client lists APIKeys and makes it the
// run's: a restarted API server answers before it serves the CRD again,
// and one whose etcd restarted answers with errors until it reconnects.
func (c *cluster) waitServing(after string) error {
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
			return fmt.Errorf("%s but the API server does not serve APIKeys within 90s: %w", after, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
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
