package reveal_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// issued has the controller issue keys named names in a new namespace,
// sealed to testenv.RevealKey, and stops it: nothing but the test touches
// the reveal Secrets afterwards.
func issued(t *testing.T, names ...string) []*gatewayv1alpha1.APIKey {
	t.Helper()
	ns := env.Namespace(t)
	stop := env.StartManager(t, manager.Options{})
	var out []*gatewayv1alpha1.APIKey
	for _, name := range names {
		k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		testenv.SealToTests(k)
		if err := env.Client.Create(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range names {
		out = append(out, env.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 15*time.Second))
	}
	stop()
	return out
}

func revealSecret(t *testing.T, k *gatewayv1alpha1.APIKey) (*corev1.Secret, error) {
	t.Helper()
	s := &corev1.Secret{}
	err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: gatewayv1alpha1.RevealSecretName(k.Name)}, s)
	return s, err
}

func TestConcurrentConsumersOneWins(t *testing.T) {
	for _, k := range issued(t, "first", "second", "third") {
		var wg sync.WaitGroup
		got := make([]keys.Key, 2)
		errs := make([]error, 2)
		start := make(chan struct{})
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				got[i], errs[i] = reveal.Consume(context.Background(), env.Client, k, testenv.RevealKey())
			}()
		}
		close(start)
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				if got[i].DisplayPrefix() != k.Status.Prefix {
					t.Errorf("%s: consumer %d got a key with prefix %s, want %s", k.Name, i, got[i].DisplayPrefix(), k.Status.Prefix)
				}
			case !errors.Is(err, reveal.ErrAlreadyRevealed):
				t.Errorf("%s: consumer %d: %v, want ErrAlreadyRevealed", k.Name, i, err)
			}
		}
		if won != 1 {
			t.Errorf("%s: %d consumers got the key, want exactly 1 (errors %v)", k.Name, won, errs)
		}
		if _, err := revealSecret(t, k); !apierrors.IsNotFound(err) {
			t.Errorf("%s: reveal Secret after the winner: %v, want it deleted", k.Name, err)
		}
	}
}

func TestReplacedSecretRefused(t *testing.T) {
	k := issued(t, "replaced")[0]
	original, err := revealSecret(t, k)
	if err != nil {
		t.Fatal(err)
	}
	if k.Status.Reveal == nil || k.Status.Reveal.SecretUID != original.UID {
		t.Fatalf("status.reveal %+v does not name the reveal Secret %s", k.Status.Reveal, original.UID)
	}
	// Someone who may write Secrets in the namespace deletes the reveal
	// Secret and plants another under its name, same contents and owner:
	// only its UID differs.
	if err := env.Client.Delete(context.Background(), original); err != nil {
		t.Fatal(err)
	}
	planted := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: original.Namespace, Name: original.Name, OwnerReferences: original.OwnerReferences},
		Type:       original.Type,
		Data:       original.Data,
	}
	if err := env.Client.Create(context.Background(), planted); err != nil {
		t.Fatal(err)
	}
	if _, err := reveal.Consume(context.Background(), env.Client, k, testenv.RevealKey()); !errors.Is(err, reveal.ErrReplaced) {
		t.Errorf("planted Secret: %v, want ErrReplaced", err)
	}
	if _, err := revealSecret(t, k); err != nil {
		t.Errorf("planted Secret after the refusal: %v, want it left alone", err)
	}
}

func TestWrongPrivateKeyRefused(t *testing.T) {
	k := issued(t, "sealed")[0]
	other, err := seal.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reveal.Consume(context.Background(), env.Client, k, other); !errors.Is(err, reveal.ErrSealedToAnother) {
		t.Errorf("opened with another private key: %v, want ErrSealedToAnother", err)
	}
	// The refusal consumed nothing: the right private key still opens it.
	got, err := reveal.Consume(context.Background(), env.Client, k, testenv.RevealKey())
	if err != nil {
		t.Fatalf("the right private key after a wrong one: %v", err)
	}
	if got.DisplayPrefix() != k.Status.Prefix {
		t.Errorf("key with prefix %s, want %s", got.DisplayPrefix(), k.Status.Prefix)
	}
}
