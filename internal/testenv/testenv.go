// Package testenv starts a real kube-apiserver and etcd (the binaries that
// `make envtest` builds) with CodeVector's CRD, RBAC roles and admission
// policies installed (by devmode.Install, as dev mode installs them), for
// tests.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/codevector/codevector/config"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/k8sversion"
	"github.com/codevector/codevector/internal/manager"
)

// K8sVersion is the version of the control-plane binaries under bin/k8s.
var K8sVersion = k8sversion.Version

// Env is a running control plane with a cluster-admin client that reads
// straight from the API server (no cache): what tests assert with.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
	Root   string

	issued sync.Map // plaintext keys handed out by IssueKey
	// etcdDir is etcd's data directory when StartWith made it (Options.
	// RestartableEtcd): envtest's own would be deleted by Etcd.Stop.
	etcdDir string
}

// Start starts etcd and kube-apiserver and installs CodeVector on them
// with devmode.Install (CRD, system namespace, RBAC roles, admission
// policies in force): the same installation dev mode does.
func Start(ctx context.Context) (*Env, error) { return StartWith(ctx, Options{}) }

// Options adjust the control plane that StartWith starts; the zero value
// is Start's.
type Options struct {
	// EtcdQuotaBackendBytes is etcd's storage quota (--quota-backend-bytes;
	// 0 keeps etcd's default of 2 GiB). etcd stores every revision until
	// kube-apiserver compacts (every 5 minutes), so a benchmark that writes
	// GiBs of objects needs more; past the quota etcd refuses all writes.
	EtcdQuotaBackendBytes int64
	// RestartableEtcd gives etcd a data directory of the Env's own, so that
	// KillEtcd and StartEtcd can restart it with its data (envtest deletes
	// the directory it made when etcd stops). Stop removes it.
	RestartableEtcd bool
}

// StartWith is Start with options.
func StartWith(ctx context.Context, o Options) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	etcd := &envtest.Etcd{}
	env.ControlPlane.Etcd = etcd
	if o.EtcdQuotaBackendBytes > 0 {
		etcd.Configure().Set("quota-backend-bytes", strconv.FormatInt(o.EtcdQuotaBackendBytes, 10))
	}
	e := &Env{Environment: env, Root: root}
	if o.RestartableEtcd {
		if e.etcdDir, err = os.MkdirTemp("", "codevector-etcd-"); err != nil {
			return nil, fmt.Errorf("creating etcd's data directory: %w", err)
		}
		etcd.DataDir = e.etcdDir
	}
	if e.Config, err = env.Start(); err != nil {
		_ = e.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	e.Config.QPS, e.Config.Burst = manager.DefaultQPS, manager.DefaultBurst
	if e.Client, err = client.New(e.Config, client.Options{Scheme: manager.Scheme()}); err != nil {
		_ = e.Stop()
		return nil, err
	}
	if err := devmode.Install(ctx, e.Config, e.Client); err != nil {
		_ = e.Stop()
		return nil, err
	}
	return e, nil
}

// Assets is the directory of the control-plane binaries: $KUBEBUILDER_ASSETS,
// else bin/k8s/<version>-<os>-<arch> in the repository.
func Assets() (string, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		root, err := RepoRoot()
		if err != nil {
			return "", err
		}
		assets = filepath.Join(root, "bin", "k8s", K8sVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return "", fmt.Errorf("control-plane binaries missing in %s: run 'make envtest' first", assets)
	}
	return assets, nil
}

// RepoRoot finds the repository root from this source file's location.
func RepoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the repository root")
	}
	return filepath.Join(filepath.Dir(file), "..", ".."), nil
}

// CreateNamespace creates a namespace; one that exists is fine.
func (e *Env) CreateNamespace(ctx context.Context, name string) error {
	return devmode.CreateNamespace(ctx, e.Client, name)
}

// ApplyFile server-side applies every object of a multi-document YAML file.
func (e *Env) ApplyFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	return devmode.ApplyYAML(ctx, e.Client, data, path)
}

// InstallPolicies applies the admission policies again and waits until a
// probe shows both in force (Start has already done so once).
func (e *Env) InstallPolicies(ctx context.Context) error {
	for _, m := range config.Policies() {
		if err := devmode.ApplyYAML(ctx, e.Client, m.Data, m.Path); err != nil {
			return err
		}
	}
	return WaitForPolicies(ctx, e.Client)
}

// WaitForPolicies dry-runs APIKey creations until the owner is defaulted
// and a foreign owner is rejected.
func WaitForPolicies(ctx context.Context, c client.Client) error {
	return devmode.WaitForPolicies(ctx, c)
}
