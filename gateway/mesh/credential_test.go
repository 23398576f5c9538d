package mesh

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"
)

func TestEnsureCredentialCreatesOnceAndShares(t *testing.T) {
	ctx := context.Background()
	c := fake.NewClientBuilder().Build()

	first, err := EnsureCredential(ctx, c, "codevector-system")
	if err != nil {
		t.Fatal(err)
	}
	second, err := EnsureCredential(ctx, c, "codevector-system")
	if err != nil {
		t.Fatal(err)
	}
	if !first.caCert.Equal(second.caCert) || !first.caKey.Equal(second.caKey) {
		t.Fatal("second replica got a different CA than the one that created the Secret")
	}
	secret := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "codevector-system", Name: PeerSecretName}, secret); err != nil {
		t.Fatal(err)
	}
	if secret.Type != PeerSecretType {
		t.Errorf("Secret type %q, want %q", secret.Type, PeerSecretType)
	}
}

// Two replicas that both find the Secret absent: the one whose create loses
// must use the winner's Secret, not its own CA.
func TestEnsureCredentialLosingTheCreateRaceGetsTheWinner(t *testing.T) {
	ctx := context.Background()
	winner, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	store := fake.NewClientBuilder().Build()
	c := interceptor.NewClient(store, interceptor.Funcs{
		Create: func(ctx context.Context, cl client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			// The winner creates between our "absent" and our create.
			won := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: PeerSecretName, Namespace: obj.GetNamespace()},
				Type:       PeerSecretType,
				Data:       winner.secretData(),
			}
			if err := cl.Create(ctx, won); err != nil {
				return err
			}
			return cl.Create(ctx, obj, opts...)
		},
	})
	got, err := EnsureCredential(ctx, c, "ns")
	if err != nil {
		t.Fatal(err)
	}
	if !got.caCert.Equal(winner.caCert) {
		t.Fatal("the replica that lost the race kept its own CA")
	}
}

func TestEnsureCredentialRejectsAMalformedSecret(t *testing.T) {
	bad := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: PeerSecretName, Namespace: "ns"},
		Data:       map[string][]byte{caCertKey: []byte("not pem")},
	}
	c := fake.NewClientBuilder().WithObjects(bad).Build()
	if _, err := EnsureCredential(context.Background(), c, "ns"); err == nil {
		t.Fatal("a malformed Secret was accepted")
	}
	forbidden := interceptor.NewClient(fake.NewClientBuilder().Build(), interceptor.Funcs{
		Create: func(context.Context, client.WithWatch, client.Object, ...client.CreateOption) error {
			return apierrors.NewForbidden(corev1.Resource("secrets"), PeerSecretName, errors.New("no RBAC"))
		},
	})
	if _, err := EnsureCredential(context.Background(), forbidden, "ns"); !apierrors.IsForbidden(err) {
		t.Fatalf("want the Forbidden error wrapped, got %v", err)
	}
}

func TestPeerListenerRequiresACredential(t *testing.T) {
	if _, err := New(Config{Listen: "127.0.0.1:0"}); err == nil {
		t.Fatal("a peer listener started without a credential")
	}
}
