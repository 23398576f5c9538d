package config_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/testenv"
)

// env is one real kube-apiserver + etcd for the package, with CodeVector
// installed by devmode.Install.
var env *testenv.Env

// logs holds what the managers of this package log.
var (
	logs      bytes.Buffer
	logWriter = &syncWriter{w: &logs}
)

// kubectl is the machine's kubectl (docs/design.md, section 10).
const kubectl = "/usr/bin/kubectl"

func TestMain(m *testing.M) {
	// client-go logs through klog (rejected events, for one): same place.
	logger := zap.New(zap.WriteTo(logWriter))
	ctrl.SetLogger(logger)
	klog.SetLogger(logger)
	testenv.Main(m, &env, testenv.AfterTests(removeChartTool))
}

// kustomize builds a kustomization under config/ with kubectl and decodes
// the result.
func kustomize(t *testing.T, dir string) ([]byte, []*unstructured.Unstructured) {
	t.Helper()
	out, err := exec.Command(kubectl, "kustomize", dir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderrOf(err))
	}
	objs, err := devmode.DecodeYAML(out)
	if err != nil {
		t.Fatalf("decoding the output of kubectl kustomize %s: %v", dir, err)
	}
	return out, objs
}

// adminKubeconfig writes the envtest admin's kubeconfig for kubectl.
func adminKubeconfig(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, env.KubeConfig, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func stderrOf(err error) string {
	if ee, ok := err.(*exec.ExitError); ok {
		return string(ee.Stderr)
	}
	return ""
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
