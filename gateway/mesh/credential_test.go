package quota

import (
	"context"
	"errors"
	"testing"
	"time"

	guber "github.com/gubernator-io/gubernator/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
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

// A replica holding another CA is refused both ways: its peers do not accept
// it as a client, and it does not accept them as servers.
func TestPeerWithAnotherCredentialIsRefused(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	ours, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := NewCredential()
	if err != nil {
		t.Fatal(err)
	}
	a := newSingle(t, Config{PeerListen: "127.0.0.1:0", Credential: ours, Clock: clk})
	b := newSingle(t, Config{PeerListen: "127.0.0.1:0", Credential: theirs, Clock: clk})
	a.SetPeers([]string{a.Addr(), b.Addr()})
	b.SetPeers([]string{a.Addr(), b.Addr()})

	var refusedAtoB, refusedBtoA bool
	for _, key := range []string{"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9"} {
		c := Counter{Key: key, Limit: 10, Window: time.Minute}
		if _, err := a.Take(context.Background(), c, 1); err != nil {
			refusedAtoB = true
		}
		if _, err := b.Take(context.Background(), c, 1); err != nil {
			refusedBtoA = true
		}
	}
	if !refusedAtoB || !refusedBtoA {
		t.Fatalf("counters owned by a peer with another CA were served (a->b refused %v, b->a refused %v)", refusedAtoB, refusedBtoA)
	}

	// Called directly: no client certificate, a certificate from another
	// CA, and one from the right CA.
	req := &guber.GetPeerRateLimitsReq{Requests: []*guber.RateLimitReq{{
		Name: counterName, UniqueKey: "direct@0", Hits: 1, Limit: 10, Duration: 60000,
	}}}
	noCert := ours.ClientTLS()
	noCert.GetClientCertificate = nil
	for _, tc := range []struct {
		name    string
		cred    credentials.TransportCredentials
		refused bool
	}{
		{"no client certificate", credentials.NewTLS(noCert), true},
		{"another CA", credentials.NewTLS(theirs.ClientTLS()), true},
		{"the shared CA", credentials.NewTLS(ours.ClientTLS()), false},
	} {
		conn, err := grpc.NewClient(a.Addr(), grpc.WithTransportCredentials(tc.cred))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = guber.NewPeersV1Client(conn).GetPeerRateLimits(ctx, req)
		cancel()
		conn.Close()
		if refused := err != nil; refused != tc.refused {
			t.Errorf("%s: refused=%v (err %v), want refused=%v", tc.name, refused, err, tc.refused)
		}
	}
}

func TestPeerListenerRequiresACredential(t *testing.T) {
	if _, err := New(context.Background(), Config{PeerListen: "127.0.0.1:0", Log: quietLog()}); err == nil {
		t.Fatal("a peer listener started without a credential")
	}
}
