package resilience

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// The manager is killed with SIGKILL at random moments while it issues a
// burst of 200 keys, and restarted each time. Afterwards every key is
// Active with exactly one hash Secret that verifies its revealed key, no
// key ID is shared, and no Secret is orphaned.
func TestManagerKilledDuringBurstLosesNothing(t *testing.T) {
	ctx := context.Background()
	kubeconfig := env.KubeconfigFor(t, "resilience-admin", "system:masters")
	ns := env.Namespace(t)
	managerArgs := []string{"manager", "--kubeconfig", kubeconfig, "--metrics-bind-address", "0", "--health-probe-bind-address", "0"}

	manager := start(t, managerArgs...)
	const n = 200
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("burst-%03d", i)}}
			testenv.SealToTests(k)
			if err := env.Client.Create(ctx, k); err != nil {
				t.Errorf("creating %s: %v", k.Name, err)
			}
		}()
	}
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for kill := range 4 {
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		manager.kill()
		t.Logf("kill %d: manager SIGKILLed with %d of %d keys Active", kill+1, countActive(t, ns), n)
		manager = start(t, managerArgs...)
	}
	wg.Wait()

	var list gatewayv1alpha1.APIKeyList
	testenv.Eventually(t, 90*time.Second, func() error {
		if got := countActive(t, ns); got != n {
			return fmt.Errorf("%d of %d keys Active", got, n)
		}
		return nil
	})
	if err := env.Client.List(ctx, &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}

	var hashes, reveals corev1.SecretList
	if err := env.Client.List(ctx, &hashes, client.InNamespace(gatewayv1alpha1.DefaultSystemNamespace),
		client.MatchingLabels{gatewayv1alpha1.LabelAPIKeyNamespace: ns}); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.List(ctx, &reveals, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	hashByUID := map[string]corev1.Secret{}
	for _, h := range hashes.Items {
		uid := h.Labels[gatewayv1alpha1.LabelAPIKeyUID]
		if _, dup := hashByUID[uid]; dup {
			t.Errorf("two hash Secrets for APIKey UID %s", uid)
		}
		hashByUID[uid] = h
	}
	revealByName := map[string]corev1.Secret{}
	for _, r := range reveals.Items {
		if r.Type == gatewayv1alpha1.RevealSecretType {
			revealByName[r.Name] = r
		}
	}
	if len(hashByUID) != n || len(revealByName) != n {
		t.Errorf("%d hash and %d reveal Secrets for %d keys: some are orphaned or missing", len(hashByUID), len(revealByName), n)
	}

	ids := map[string]string{}
	for _, k := range list.Items {
		if other, dup := ids[k.Status.Prefix]; dup {
			t.Errorf("%s and %s share key ID %s", k.Name, other, k.Status.Prefix)
		}
		ids[k.Status.Prefix] = k.Name
		h, ok := hashByUID[string(k.UID)]
		if !ok || h.Name != gatewayv1alpha1.HashSecretName(string(k.UID)) {
			t.Errorf("%s: no hash Secret of its own", k.Name)
			continue
		}
		r, ok := revealByName[gatewayv1alpha1.RevealSecretName(k.Name)]
		if !ok || !metav1.IsControlledBy(&r, &k) {
			t.Errorf("%s: no reveal Secret owned by it", k.Name)
			continue
		}
		if _, plaintext := r.Data[gatewayv1alpha1.RevealSecretPlainKey]; plaintext {
			t.Errorf("%s: reveal Secret holds the key in plaintext", k.Name)
		}
		plain, err := testenv.RevealKey().Open(k.UID, r.Data[gatewayv1alpha1.RevealSecretSealedKey])
		if err != nil || plain.DisplayPrefix() != k.Status.Prefix {
			t.Errorf("%s: reveal Secret holds %v (err %v), status says %s", k.Name, plain, err, k.Status.Prefix)
			continue
		}
		if ok, err := keys.Verify(plain, string(h.Data[gatewayv1alpha1.HashSecretKey])); !ok || err != nil {
			t.Errorf("%s: hash does not verify the revealed key (%v)", k.Name, err)
		}
	}
}

func countActive(t *testing.T, ns string) int {
	t.Helper()
	var list gatewayv1alpha1.APIKeyList
	if err := env.Client.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, k := range list.Items {
		if k.Status.Phase == gatewayv1alpha1.PhaseActive {
			n++
		}
	}
	return n
}
