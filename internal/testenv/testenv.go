// Package testenv starts a real kube-apiserver and etcd (the binaries that
// `make envtest` builds) with CodeVector's CRD and admission policies
// installed, for tests and for dev mode.
package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/operator"
)

// K8sVersion is the version of the control-plane binaries under bin/k8s.
const K8sVersion = "1.37.2"

// Env is a running control plane with a cluster-admin client that reads
// straight from the API server (no cache): what tests assert with.
type Env struct {
	*envtest.Environment
	Config *rest.Config
	Client client.Client
	Root   string

	issued sync.Map // plaintext keys handed out by IssueKey
}

// Start starts etcd and kube-apiserver, installs the CRD, creates the system
// namespace and installs the admission policies, waiting until the API
// server enforces them.
func Start(ctx context.Context) (*Env, error) {
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		assets = filepath.Join(root, "bin", "k8s", K8sVersion+"-"+runtime.GOOS+"-"+runtime.GOARCH)
	}
	if _, err := os.Stat(filepath.Join(assets, "kube-apiserver")); err != nil {
		return nil, fmt.Errorf("control-plane binaries missing in %s: run 'make envtest' first", assets)
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting kube-apiserver and etcd: %w", err)
	}
	cfg.QPS, cfg.Burst = operator.DefaultQPS, operator.DefaultBurst
	c, err := client.New(cfg, client.Options{Scheme: operator.Scheme()})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	e := &Env{Environment: env, Config: cfg, Client: c, Root: root}
	if err := e.CreateNamespace(ctx, gatewayv1alpha1.DefaultSystemNamespace); err != nil {
		_ = env.Stop()
		return nil, err
	}
	if err := e.InstallPolicies(ctx); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return e, nil
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
	err := e.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", name, err)
	}
	return nil
}

// ApplyFile creates every object of a multi-document YAML file, replacing
// objects that exist.
func (e *Env) ApplyFile(ctx context.Context, path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("decoding %s: %w", path, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		err := e.Client.Create(ctx, u)
		if apierrors.IsAlreadyExists(err) {
			existing := &unstructured.Unstructured{}
			existing.SetGroupVersionKind(u.GroupVersionKind())
			if err = e.Client.Get(ctx, client.ObjectKeyFromObject(u), existing); err == nil {
				u.SetResourceVersion(existing.GetResourceVersion())
				err = e.Client.Update(ctx, u)
			}
		}
		if err != nil {
			return fmt.Errorf("applying %s %s from %s: %w", u.GetKind(), u.GetName(), path, err)
		}
	}
}

// InstallPolicies installs config/policies and waits until a probe shows
// both policies in force (the API server enforces a new policy only a
// second or two after it is created).
func (e *Env) InstallPolicies(ctx context.Context) error {
	for _, f := range []string{"owner-default.yaml", "owner-validate.yaml"} {
		if err := e.ApplyFile(ctx, filepath.Join(e.Root, "config", "policies", f)); err != nil {
			return err
		}
	}
	return WaitForPolicies(ctx, e.Client)
}

// WaitForPolicies dry-runs APIKey creations until the owner is defaulted
// and a foreign owner is rejected.
func WaitForPolicies(ctx context.Context, c client.Client) error {
	probe := func(owner string) (*gatewayv1alpha1.APIKey, error) {
		k := &gatewayv1alpha1.APIKey{
			ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, GenerateName: "policy-probe-"},
			Spec:       gatewayv1alpha1.APIKeySpec{Owner: owner},
		}
		return k, c.Create(ctx, k, client.DryRunAll)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		defaulted, err1 := probe("")
		_, err2 := probe("policy-probe-nobody")
		if err1 == nil && defaulted.Spec.Owner != "" && apierrors.IsForbidden(err2) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("admission policies not in force after 30s (defaulting: owner=%q err=%v; validation: %v)", defaulted.Spec.Owner, err1, err2)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
