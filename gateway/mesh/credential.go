package mesh

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

const (
	// PeerSecretName is the Secret, in the system namespace, that holds the
	// replicas' shared peer credential (docs/design.md, section 14).
	PeerSecretName = "codevector-gateway-peers"
	// PeerSecretType marks the peer Secret, so that caches selecting hash
	// Secrets by type never see it.
	PeerSecretType = "gateway.codevector.io/gateway-peers"

	caCertKey = "ca.crt"
	caKeyKey  = "ca.key"

	// peerServerName is the name every leaf certificate carries and every
	// client expects. Peers are dialled by IP, and pod IPs change; the CA,
	// not the name, is what authenticates a peer.
	peerServerName = "codevector-gateway-peer"

	caLifetime   = 10 * 365 * 24 * time.Hour
	leafLifetime = 24 * time.Hour
	// clockSkew backdates certificates so a peer whose clock is a little
	// behind still accepts them.
	clockSkew = 5 * time.Minute
)

// Credential is the replicas' shared peer credential: a CA that only the
// gateway replicas hold. Each replica issues itself short-lived leaf
// certificates from it; peers accept only callers presenting such a
// certificate (mutual TLS), and callers accept only such servers.
type Credential struct {
	caCert *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool

	mu   sync.Mutex
	leaf *tls.Certificate
}

// NewCredential generates a fresh CA (ECDSA P-256). EnsureCredential is the
// way to share one between replicas; this is for it and for tests.
func NewCredential() (*Credential, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating peer CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          randomSerial(),
		Subject:               pkix.Name{CommonName: "codevector gateway peers CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caLifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("creating peer CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing peer CA certificate: %w", err)
	}
	return newCredential(cert, key), nil
}

func newCredential(cert *x509.Certificate, key *ecdsa.PrivateKey) *Credential {
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &Credential{caCert: cert, caKey: key, pool: pool}
}

// EnsureCredential returns the credential in the Secret PeerSecretName in
// namespace, creating the Secret first if it is absent. Replicas starting
// together race safely: creation is attempted first, and whoever loses gets
// the winner's Secret (RBAC: create Secrets, get this one name). c must read
// from the API server, not from a cache that cannot see this Secret.
func EnsureCredential(ctx context.Context, c client.Client, namespace string) (*Credential, error) {
	fresh, err := NewCredential()
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      PeerSecretName,
			Namespace: namespace,
			Labels:    map[string]string{gatewayv1alpha1.LabelManagedBy: gatewayv1alpha1.ManagedByValue},
		},
		Type: PeerSecretType,
		Data: fresh.secretData(),
	}
	err = c.Create(ctx, secret)
	if err == nil {
		return fresh, nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("creating Secret %s/%s: %w", namespace, PeerSecretName, err)
	}
	existing := &corev1.Secret{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: PeerSecretName}, existing); err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, PeerSecretName, err)
	}
	cred, err := credentialFromData(existing.Data)
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w", namespace, PeerSecretName, err)
	}
	return cred, nil
}

func (c *Credential) secretData() map[string][]byte {
	keyDER, err := x509.MarshalECPrivateKey(c.caKey)
	if err != nil {
		// Only fails for keys on curves x509 does not know; P-256 is one it knows.
		panic(fmt.Sprintf("marshalling peer CA key: %v", err))
	}
	return map[string][]byte{
		caCertKey: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.caCert.Raw}),
		caKeyKey:  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
	}
}

func credentialFromData(data map[string][]byte) (*Credential, error) {
	certBlock, _ := pem.Decode(data[caCertKey])
	keyBlock, _ := pem.Decode(data[caKeyKey])
	if certBlock == nil || keyBlock == nil {
		return nil, errors.New("missing or malformed " + caCertKey + " or " + caKeyKey)
	}
	cert, err := x509.ParseCertificate(certBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", caCertKey, err)
	}
	key, err := x509.ParseECPrivateKey(keyBlock.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", caKeyKey, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New(caKeyKey + " does not match " + caCertKey)
	}
	return newCredential(cert, key), nil
}

// certificate returns this replica's leaf certificate, issuing a new one
// when the current one has less than a third of its lifetime left. It is
// called per TLS handshake, not per request.
func (c *Credential) certificate() (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leaf != nil && time.Until(c.leaf.Leaf.NotAfter) > leafLifetime/3 {
		return c.leaf, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating peer key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: peerServerName},
		DNSNames:     []string{peerServerName},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(leafLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.caCert, &key.PublicKey, c.caKey)
	if err != nil {
		return nil, fmt.Errorf("issuing peer certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("parsing peer certificate: %w", err)
	}
	c.leaf = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
	return c.leaf, nil
}

// DeriveSecret returns a 32-byte secret for purpose that every holder of
// the credential derives alike and nobody else can: HKDF-SHA256 over the
// CA's private key. Replicas share keyed data (verified-key proofs) under
// it without another Secret to create, mount or rotate.
func (c *Credential) DeriveSecret(purpose string) []byte {
	raw, err := c.caKey.Bytes()
	if err != nil {
		panic(fmt.Sprintf("encoding peer CA key: %v", err)) // P-256 always encodes
	}
	secret, err := hkdf.Key(sha256.New, raw, nil, "codevector gateway peers: "+purpose, 32)
	if err != nil {
		panic(fmt.Sprintf("deriving %s secret: %v", purpose, err)) // only for lengths over 8 KiB
	}
	return secret
}

// ServerTLS is the TLS configuration of the peer listener: it requires a
// client certificate issued by the shared CA.
func (c *Credential) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		ClientAuth: tls.RequireAndVerifyClientCert,
		ClientCAs:  c.pool,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
	}
}

// ClientTLS is the TLS configuration for calling peers: it presents this
// replica's certificate and accepts only servers certified by the shared CA.
func (c *Credential) ClientTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		RootCAs:    c.pool,
		ServerName: peerServerName,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.certificate()
		},
	}
}

func randomSerial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		panic(fmt.Sprintf("reading random serial: %v", err))
	}
	return n
}

// ReadCredential returns the credential in the Secret PeerSecretName in
// namespace, waiting until it exists: the manager creates it
// (EnsureCredential), so that gateways need no right to create Secrets in
// the namespace that holds the key hashes (one that could create Secrets
// there could plant a hash). c must read from the API server.
func ReadCredential(ctx context.Context, c client.Client, namespace string, log *slog.Logger) (*Credential, error) {
	var cred *Credential
	var last error
	logged := false
	err := wait.PollUntilContextCancel(ctx, 2*time.Second, true, func(ctx context.Context) (bool, error) {
		s := &corev1.Secret{}
		if last = c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: PeerSecretName}, s); last != nil {
			if apierrors.IsNotFound(last) && !logged {
				logged = true
				log.Info("Waiting for the manager to create the peer credential", "secret", namespace+"/"+PeerSecretName)
			}
			return false, nil
		}
		if cred, last = credentialFromData(s.Data); last != nil {
			return false, nil
		}
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s: %w (last: %v)", namespace, PeerSecretName, err, last)
	}
	return cred, nil
}
