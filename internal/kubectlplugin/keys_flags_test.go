package kubectlplugin

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// TestKeysCLIConnectionFlags uses kubectl's connection flags as a kubectl
// user would, against the real API server: each one must reach it (or
// fail) exactly as kubectl would with the same flag.
func TestKeysCLIConnectionFlags(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	ctx := context.Background()
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)
	admin := e.KubeconfigFor(t, "root@example.com", "system:masters")

	// --as: the API server sees alice, and its admission policy makes her
	// the owner of the key; the key reaches only this process.
	stdout, stderr, err := keysRun(admin, "", "create", "impersonated", "-n", ns, "--as", "alice@example.com")
	if err != nil {
		t.Fatalf("create --as alice: %v\n%s", err, stderr)
	}
	if !testenv.KeyLine.MatchString(stdout) {
		t.Errorf("create --as alice printed %d bytes on stdout, want the key alone", len(stdout))
	}
	ak := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "impersonated"}, ak); err != nil {
		t.Fatal(err)
	}
	if ak.Spec.Owner != "alice@example.com" {
		t.Errorf("owner of the key created --as alice = %q", ak.Spec.Owner)
	}
	// --as a user with no role: refused in that user's name.
	_, _, err = keysRun(admin, "", "list", "-n", ns, "--as", "eve@example.com")
	if !errors.Is(err, errForbidden) || !strings.Contains(err.Error(), `User "eve@example.com" cannot list`) {
		t.Errorf("list --as eve: err %v, want forbidden for eve", err)
	}
	// --as-group: the groups reach RBAC, and the owner policy.
	stdout, _, err = keysRun(admin, "", "list", "-n", ns, "--as", "eve@example.com", "--as-group", "system:masters")
	if err != nil || !strings.Contains(stdout, "impersonated") {
		t.Errorf("list --as eve --as-group system:masters: err %v\n%s", err, stdout)
	}
	userKubeconfig(t, e, "mallory@example.com", ns, editor)
	_, _, err = keysRun(admin, "", "revoke", "impersonated", "--yes", "-n", ns, "--as", "mallory@example.com")
	if err == nil || !strings.Contains(err.Error(), "belongs to alice@example.com") {
		t.Errorf("revoke of alice's key by mallory: err %v, want the owner policy's refusal", err)
	}
	if _, stderr, err := keysRun(admin, "", "revoke", "impersonated", "--yes", "-n", ns, "--as", "mallory@example.com",
		"--as-group", gatewayv1alpha1.DefaultAdminGroup); err != nil {
		t.Errorf("revoke by mallory as a member of %s: %v\n%s", gatewayv1alpha1.DefaultAdminGroup, err, stderr)
	}

	// --server, --token, --certificate-authority and no kubeconfig at all:
	// a service account's token.
	host := e.Config.Host
	caFile := writeFile(t, "ca.crt", e.Config.CAData)
	token := serviceAccountToken(t, e.Client, ns, "ci-bot", editor)
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	stdout, stderr, err = keysRun("", "", "list", "--server", host, "--token", token, "--certificate-authority", caFile, "-n", ns)
	if err != nil || !strings.Contains(stdout, "impersonated") {
		t.Errorf("list --server --token --certificate-authority: err %v\n%s%s", err, stdout, stderr)
	}
	// Without the CA the server is not trusted, and the error says so;
	// --insecure-skip-tls-verify trusts it anyway.
	_, _, err = keysRun("", "", "list", "-s", host, "--token", token, "-n", ns)
	if !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("list without the CA: err %v, want an untrusted certificate", err)
	}
	if _, _, err := keysRun("", "", "list", "-s", host, "--token", token, "-n", ns, "--insecure-skip-tls-verify"); err != nil {
		t.Errorf("list --insecure-skip-tls-verify: %v", err)
	}
	// --tls-server-name: the name the certificate must carry.
	_, _, err = keysRun("", "", "list", "-s", host, "--token", token, "--certificate-authority", caFile, "--tls-server-name", "elsewhere.example", "-n", ns)
	if !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "elsewhere.example") {
		t.Errorf("list --tls-server-name elsewhere.example: err %v, want a certificate not valid for that name", err)
	}
	// A wrong token: the server does not know us.
	if _, _, err := keysRun("", "", "list", "-s", host, "--token", "nothing", "--certificate-authority", caFile, "-n", ns); !errors.Is(err, errUnauthorized) {
		t.Errorf("list --token nothing: err %v, want unauthorized", err)
	}

	// --client-certificate and --client-key: alice's certificate, from files.
	kc, err := clientcmd.LoadFromFile(alice)
	if err != nil {
		t.Fatal(err)
	}
	user := kc.AuthInfos[kc.Contexts[kc.CurrentContext].AuthInfo]
	certFile, keyFile := writeFile(t, "tls.crt", user.ClientCertificateData), writeFile(t, "tls.key", user.ClientKeyData)
	if _, stderr, err := keysRun("", "", "list", "-s", host, "--certificate-authority", caFile, "--client-certificate", certFile, "--client-key", keyFile, "-n", ns); err != nil {
		t.Errorf("list --client-certificate --client-key: %v\n%s", err, stderr)
	}

	// --cluster and --user pick a kubeconfig's entries over the current
	// context's; --context picks another context.
	withStranger := filepath.Join(t.TempDir(), "kubeconfig")
	kc.AuthInfos["stranger"] = &clientcmdapi.AuthInfo{Token: "nothing"}
	kc.Clusters["nowhere"] = &clientcmdapi.Cluster{Server: "https://" + testenv.FreeAddr(t), InsecureSkipTLSVerify: true}
	kc.Contexts["elsewhere"] = &clientcmdapi.Context{Cluster: "nowhere", AuthInfo: "stranger", Namespace: ns}
	kc.CurrentContext = "elsewhere"
	if err := clientcmd.WriteToFile(*kc, withStranger); err != nil {
		t.Fatal(err)
	}
	testCluster, aliceUser := "test", "alice@example.com"
	if _, _, err := keysRun(withStranger, "", "list"); !errors.Is(err, errUnreachable) {
		t.Errorf("list in context elsewhere: err %v, want unreachable", err)
	}
	if _, _, err := keysRun(withStranger, "", "list", "--cluster", testCluster); !errors.Is(err, errUnauthorized) {
		t.Errorf("list --cluster test as the stranger: err %v, want unauthorized", err)
	}
	if stdout, _, err := keysRun(withStranger, "", "list", "--cluster", testCluster, "--user", aliceUser); err != nil || !strings.Contains(stdout, "impersonated") {
		t.Errorf("list --cluster test --user alice: err %v\n%s", err, stdout)
	}
	if stdout, _, err := keysRun(withStranger, "", "list", "--context", "test"); err != nil || !strings.Contains(stdout, "impersonated") {
		t.Errorf("list --context test: err %v\n%s", err, stdout)
	}

	// --request-timeout: a server that accepts connections and never
	// answers costs the timeout, not the 20 s default.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = silent.Close() })
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { _ = c.Close() })
		}
	}()
	start := time.Now()
	_, _, err = keysRun(kubeconfigFor(t, "https://"+silent.Addr().String()), "", "list", "--request-timeout", "1s")
	if took := time.Since(start); !errors.Is(err, errUnreachable) || took > 8*time.Second {
		t.Errorf("list --request-timeout 1s against a silent server: err %v after %v, want unreachable within seconds", err, took)
	}
}

// serviceAccountToken makes a service account bound to role in ns and
// returns a token for it (the TokenRequest API, as kubectl create token).
func serviceAccountToken(t *testing.T, c client.Client, ns, name, role string) string {
	t.Helper()
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	if err := c.Create(ctx, sa); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role + "-" + name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: ns}},
	}
	if err := c.Create(ctx, rb); err != nil {
		t.Fatal(err)
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}
	if err := c.SubResource("token").Create(ctx, sa, tr); err != nil {
		t.Fatalf("requesting a token for %s/%s: %v", ns, name, err)
	}
	return tr.Status.Token
}

func writeFile(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
