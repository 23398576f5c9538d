package testenv

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/keys"
)

// FastArgon2 keeps tests quick where the cost of a hash is not the point.
var FastArgon2 = keys.Params{Memory: keys.MinMemoryKiB, Time: 1, Threads: 1}

// StartManager runs the real manager, with production cache settings,
// until the test ends (or until the returned stop is called).
func (e *Env) StartManager(t testing.TB, o manager.Options) (stop func()) {
	t.Helper()
	_, stop = RunManager(t, e.Config, o)
	return stop
}

// RunManager runs the real manager against the API server of cfg (as
// whichever user cfg is), with FastArgon2 unless o says otherwise, until
// the test ends or stop is called; tests that look inside it get it too.
func RunManager(t testing.TB, cfg *rest.Config, o manager.Options) (mgr ctrl.Manager, stop func()) {
	t.Helper()
	if o.Argon2 == (keys.Params{}) {
		o.Argon2 = FastArgon2
	}
	ctx, cancel := context.WithCancel(context.Background())
	mgr, err := manager.New(ctx, cfg, o)
	if err != nil {
		cancel()
		t.Fatalf("creating manager: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager stopped with error: %v", err)
		}
	})
	t.Cleanup(stop)
	return mgr, stop
}

var namespaceSeq atomic.Int64

// Namespace creates a namespace unique to the test.
func (e *Env) Namespace(t testing.TB) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-", " ", "-").Replace(t.Name()))
	if len(name) > 48 {
		name = name[:48]
	}
	name = fmt.Sprintf("%s-%d", strings.Trim(name, "-"), namespaceSeq.Add(1))
	if err := e.CreateNamespace(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

// WaitForPhase waits until the APIKey reaches phase and returns it.
func (e *Env) WaitForPhase(t testing.TB, ns, name string, phase gatewayv1alpha1.Phase, timeout time.Duration) *gatewayv1alpha1.APIKey {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	Eventually(t, timeout, func() error {
		if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, k); err != nil {
			return err
		}
		if k.Status.Phase != phase {
			return fmt.Errorf("APIKey %s/%s is in phase %q, want %q", ns, name, k.Status.Phase, phase)
		}
		return nil
	})
	return k
}

// IssueKey creates an APIKey sealed to RevealKey, waits for the
// controller and consumes and opens its reveal, as the console and CLI do.
// A manager must be running.
func (e *Env) IssueKey(t testing.TB, ns, name string, mutate ...func(*gatewayv1alpha1.APIKey)) (*gatewayv1alpha1.APIKey, keys.Key) {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	k.Namespace, k.Name = ns, name
	SealToTests(k)
	for _, m := range mutate {
		m(k)
	}
	if err := e.Client.Create(context.Background(), k); err != nil {
		t.Fatalf("creating APIKey %s/%s: %v", ns, name, err)
	}
	k = e.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 15*time.Second)
	plain, err := Reveal(context.Background(), e.Client, k)
	if err != nil {
		t.Fatalf("revealing APIKey %s/%s: %v", ns, name, err)
	}
	e.issued.Store(plain.Reveal(), true)
	return k, plain
}

// Issued records k, a key a test made without IssueKey (planted with
// WriteIssuedKeyIn), among the issued keys, so the leak check covers it.
func (e *Env) Issued(k keys.Key) { e.issued.Store(k.Reveal(), true) }

// IssuedKeys lists every plaintext key IssueKey handed out, for tests that
// check no key leaked into logs or responses.
func (e *Env) IssuedKeys() []string {
	var out []string
	e.issued.Range(func(k, _ any) bool { out = append(out, k.(string)); return true })
	return out
}

// KubeconfigFor writes a kubeconfig of a new user of the API server (a
// client certificate) into the test's temporary directory, for kubectl
// and for codevector processes.
func (e *Env) KubeconfigFor(t testing.TB, name string, groups ...string) string {
	t.Helper()
	u, err := e.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		t.Fatalf("adding user %s: %v", name, err)
	}
	data, err := u.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
