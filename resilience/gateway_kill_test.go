package resilience

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// One of two gateway replicas is killed with SIGKILL under load: the other
// keeps serving every request, and the restarted one is ready (and
// authenticates) once its watches have synced.
func TestGatewayReplicaKilledUnderLoad(t *testing.T) {
	env.StartManager(t, manager.Options{})
	kubeconfig := env.KubeconfigFor(t, "resilience-admin", "system:masters")
	up := httptest.NewServer(&devmode.EchoUpstream{})
	defer up.Close()
	providers := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(providers, []byte("providers:\n  openai:\n    baseURL: "+up.URL+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, key := env.IssueKey(t, env.Namespace(t), "replicated")

	startReplica := func(addr string) *process {
		p := start(t, "gateway", "--kubeconfig", kubeconfig, "--listen", addr, "--metrics-listen=", "--providers", providers)
		testenv.Eventually(t, 15*time.Second, func() error {
			if status, body := get("http://" + addr + "/readyz"); status != http.StatusOK {
				return fmt.Errorf("replica %s /readyz %d %s\n%s", addr, status, body, p.logs)
			}
			return nil
		})
		return p
	}
	addrA, addrB := freeAddr(t), freeAddr(t)
	a := startReplica(addrA)
	startReplica(addrB)

	var okA, downA, okB, failB atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if chatStatus("http://"+addrB, key) == http.StatusOK {
					okB.Add(1)
				} else {
					failB.Add(1)
				}
				// A's failures are expected once it is killed.
				switch chatStatus("http://"+addrA, key) {
				case http.StatusOK:
					okA.Add(1)
				case 0: // no answer at all
					downA.Add(1)
				}
			}
		}()
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if okA.Load() == 0 || okB.Load() == 0 {
			return fmt.Errorf("the load is not served by both replicas yet: %d requests ok on A, %d on B", okA.Load(), okB.Load())
		}
		return nil
	})
	a.kill()
	killedAt := time.Now()
	okBAtKill := okB.Load()
	// Restart A only once the load has found it gone and B has served on
	// without it.
	testenv.Eventually(t, 10*time.Second, func() error {
		if downA.Load() < 8 || okB.Load() < okBAtKill+8 {
			return fmt.Errorf("since the kill: %d requests unanswered by A, %d served by B", downA.Load(), okB.Load()-okBAtKill)
		}
		return nil
	})
	a = startReplica(addrA)
	t.Logf("killed replica ready again %v after SIGKILL", time.Since(killedAt).Round(time.Millisecond))
	if status := chatStatus("http://"+addrA, key); status != http.StatusOK {
		t.Errorf("restarted replica: %d for a valid key\n%s", status, a.logs)
	}
	close(stop)
	wg.Wait()
	if failB.Load() > 0 || okB.Load() == 0 {
		t.Errorf("surviving replica: %d requests ok, %d failed; want none failed", okB.Load(), failB.Load())
	}
	t.Logf("surviving replica served %d requests without a failure", okB.Load())
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
