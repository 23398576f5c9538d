package controllers_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
)

// env is one real kube-apiserver + etcd shared by the tests of this
// package. Each test starts its own manager (tests here do not run in
// parallel) and works in its own namespace.
var env *testenv.Env

func TestMain(m *testing.M) { testenv.Main(m, &env) }

// newKey is an APIKey as `kubectl apikey create` makes it: sealed to a
// public key (testenv.RevealKey's), so the controller issues it at once.
// unsealed undoes that.
func newKey(ns, name string, mutate ...func(*gatewayv1alpha1.APIKey)) *gatewayv1alpha1.APIKey {
	k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	testenv.SealToTests(k)
	for _, m := range mutate {
		m(k)
	}
	return k
}

func create(t *testing.T, k *gatewayv1alpha1.APIKey) *gatewayv1alpha1.APIKey {
	t.Helper()
	if err := env.Client.Create(context.Background(), k); err != nil {
		t.Fatalf("creating APIKey %s/%s: %v", k.Namespace, k.Name, err)
	}
	return k
}

func get(t *testing.T, ns, name string) *gatewayv1alpha1.APIKey {
	t.Helper()
	k := &gatewayv1alpha1.APIKey{}
	if err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, k); err != nil {
		t.Fatalf("reading APIKey %s/%s: %v", ns, name, err)
	}
	return k
}

func secret(t *testing.T, ns, name string) (*corev1.Secret, bool) {
	t.Helper()
	s := &corev1.Secret{}
	err := env.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s)
	if apierrors.IsNotFound(err) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("reading Secret %s/%s: %v", ns, name, err)
	}
	return s, true
}

func hashSecretOf(t *testing.T, k *gatewayv1alpha1.APIKey) (*corev1.Secret, bool) {
	return secret(t, gatewayv1alpha1.DefaultSystemNamespace, gatewayv1alpha1.HashSecretName(string(k.UID)))
}

func waitForSecretGone(t *testing.T, ns, name string) {
	t.Helper()
	testenv.Eventually(t, 10*time.Second, func() error {
		if _, ok := secret(t, ns, name); ok {
			return fmt.Errorf("secret %s/%s still exists", ns, name)
		}
		return nil
	})
}

// unsealed makes newKey's APIKey one applied without a public key.
func unsealed(k *gatewayv1alpha1.APIKey) { k.Spec.RevealPublicKey = "" }

// revealedKey opens the sealed key in the reveal Secret without consuming it.
func revealedKey(t *testing.T, k *gatewayv1alpha1.APIKey) keys.Key {
	t.Helper()
	s, ok := secret(t, k.Namespace, gatewayv1alpha1.RevealSecretName(k.Name))
	if !ok {
		t.Fatalf("reveal Secret of %s/%s missing", k.Namespace, k.Name)
	}
	if _, plain := s.Data[gatewayv1alpha1.RevealSecretPlainKey]; plain {
		t.Errorf("reveal Secret of %s/%s holds the key in plaintext", k.Namespace, k.Name)
	}
	key, err := testenv.RevealKey().Open(k.UID, s.Data[gatewayv1alpha1.RevealSecretSealedKey])
	if err != nil {
		t.Fatalf("reveal Secret holds no key sealed to the test key: %v", err)
	}
	return key
}

// mutateOneChar returns s with its character at i changed.
func mutateOneChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'a' {
		b[i] = 'b'
	} else {
		b[i] = 'a'
	}
	return string(b)
}

func isInvalid(err error) bool { return apierrors.IsInvalid(err) || apierrors.IsBadRequest(err) }

var errNotYet = errors.New("not yet")

func patchSpec(t *testing.T, k *gatewayv1alpha1.APIKey, mutate func(*gatewayv1alpha1.APIKey)) error {
	t.Helper()
	base := k.DeepCopy()
	mutate(k)
	return env.Client.Patch(context.Background(), k, client.MergeFrom(base))
}
