package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/gateway/providers"
	"github.com/codevector/codevector/gateway/server"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
)

// gatewayUser is the gateway's service account as config/rbac binds it.
// The tests run the gateway as that user, with the RBAC roles and admission
// policies that devmode.Install installs, so they prove that the console works
// with exactly the permissions the gateway is deployed with.
const gatewayUser = "system:serviceaccount:" + gatewayv1alpha1.DefaultSystemNamespace + ":codevector-gateway"

var (
	env *testenv.Env
	// gatewayConfig authenticates as gatewayUser.
	gatewayConfig *rest.Config
	// logs captures every manager and gateway log line of the package, so
	// TestMain can check that none holds a key.
	logs = &testenv.LogBuffer{}
	// handedOut are the keys console responses gave the tests.
	handedOut sync.Map
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(zap.New(zap.WriteTo(logs), zap.UseDevMode(true)))
	testenv.Main(m, &env,
		testenv.Setup(func(env *testenv.Env) error {
			u, err := env.AddUser(envtest.User{Name: gatewayUser, Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + gatewayv1alpha1.DefaultSystemNamespace}}, nil)
			if err != nil {
				return fmt.Errorf("adding the gateway's user: %w", err)
			}
			gatewayConfig = u.Config()
			return nil
		}),
		testenv.AfterTests(func(code int) int {
			if code != 0 {
				return code
			}
			var handed []string
			handedOut.Range(func(k, _ any) bool { handed = append(handed, k.(string)); return true })
			if err := testenv.KeyLeaks("gateway and manager logs", logs.String(), handed); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return code
		}))
}

// consoleNamespace makes a namespace for one test's console keys and
// grants the gateway there what config/rbac grants it in the system
// namespace (the Role's comment says to move those rules with the console).
func consoleNamespace(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	ns := env.Namespace(t)
	deployed := &rbacv1.Role{}
	if err := env.Client.Get(ctx, types.NamespacedName{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: "codevector-gateway"}, deployed); err != nil {
		t.Fatalf("reading the gateway's Role from config/rbac: %v", err)
	}
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "codevector-gateway"}, Rules: deployed.Rules}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "codevector-gateway"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "codevector-gateway"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: "codevector-gateway"}},
	}
	if err := env.Client.Create(ctx, role); err != nil {
		t.Fatal(err)
	}
	if err := env.Client.Create(ctx, binding); err != nil {
		t.Fatal(err)
	}
	return ns
}

// stack is a manager, an upstream and a gateway with the console, as the
// browser and API tests use them.
type stack struct {
	URL       string
	Namespace string
	upstream  *httptest.Server
}

// startStack runs the manager and one gateway (as gatewayUser) whose
// console keeps keys in a fresh namespace. mutate adjusts the console.
func startStack(t *testing.T, withManager bool, mutate func(*server.Options)) *stack {
	t.Helper()
	return startStackAt(t, withManager, func(_ *stack, o *server.Options) {
		if mutate != nil {
			mutate(o)
		}
	})
}

// startStackAt is startStack for options that need the gateway's URL
// (s.URL is set before mutate runs).
func startStackAt(t *testing.T, withManager bool, mutate func(*stack, *server.Options)) *stack {
	t.Helper()
	if withManager {
		env.StartManager(t, manager.Options{})
	}
	up := httptest.NewServer(&devmode.EchoUpstream{})
	t.Cleanup(up.Close)
	ps, err := providers.ParseProviders([]byte(fmt.Sprintf(`providers:
  openai:
    baseURL: %s
    credential: {env: OPENAI_API_KEY}
`, up.URL)), func(string) string { return "sk-upstream" })
	if err != nil {
		t.Fatal(err)
	}
	ln := testenv.Listener(t)
	s := &stack{URL: "http://" + ln.Addr().String(), Namespace: consoleNamespace(t), upstream: up}
	o := server.Options{
		Providers: ps,
		Logger:    slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	o.Console.Namespace = s.Namespace
	// The tests' users come through a sign-in proxy in the same pod that
	// sets X-Forwarded-Email and X-Forwarded-Groups (oauth2-proxy with
	// --set-xauthrequest), trusted as an operator would configure it:
	// header trust is off unless configured.
	o.Console.ProxyCIDRs = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128")}
	o.Console.UserHeader = "X-Forwarded-Email"
	o.Console.GroupsHeader = "X-Forwarded-Groups"
	// The gateway watches only this test's namespace (as with
	// --namespaces), because the console lists a user's keys from every
	// namespace the gateway watches, and the tests' users (the dev user
	// above all) hold keys in the namespaces of earlier tests, which
	// envtest never deletes. mutate may add namespaces, or watch all.
	o.Namespaces = []string{s.Namespace}
	mutate(s, &o)
	testenv.RunGatewayOn(t, ln, 15*time.Second, gatewayConfig, o)
	return s
}

// clusterAdmin is a client for a cluster admin who is also a CodeVector
// admin, the one kind of user the admission policy lets name another owner.
var clusterAdmin = sync.OnceValues(func() (client.Client, error) {
	u, err := env.AddUser(envtest.User{Name: "cluster-admin@example.com", Groups: []string{"system:masters", gatewayv1alpha1.DefaultAdminGroup}}, nil)
	if err != nil {
		return nil, err
	}
	return client.New(u.Config(), client.Options{Scheme: manager.Scheme()})
})

// kubectlKey creates an APIKey for owner as a cluster admin would with
// kubectl, in any namespace, has its owner ask for it (as `kubectl apikey
// reveal` would) and waits until the controller has issued it.
// An empty name is generated ("kubectl-..."). Nobody consumes its reveal:
// the tests need only what the console lists.
func kubectlKey(t *testing.T, namespace, name, owner, displayName string) *gatewayv1alpha1.APIKey {
	t.Helper()
	admin, err := clusterAdmin()
	if err != nil {
		t.Fatalf("a client for the cluster admin: %v", err)
	}
	k := &gatewayv1alpha1.APIKey{}
	k.Namespace, k.Name = namespace, name
	if name == "" {
		k.GenerateName = "kubectl-"
	}
	k.Spec.Owner, k.Spec.DisplayName = owner, displayName
	if err := admin.Create(context.Background(), k); err != nil {
		t.Fatalf("creating APIKey %s/%s for %s: %v", namespace, name, owner, err)
	}
	// The admin cannot receive it; its owner asks for it.
	if err := env.RequestRevealAs(context.Background(), owner, namespace, k.Name); err != nil {
		t.Fatal(err)
	}
	return env.WaitForPhase(t, namespace, k.Name, gatewayv1alpha1.PhaseActive, 15*time.Second)
}

// chat sends a chat completion through the gateway with key.
func (s *stack) chat(t *testing.T, key string) int {
	t.Helper()
	status, _ := testenv.DocsChat(t, s.URL, key)
	return status
}

// waitForStatus waits until the gateway answers key with status.
func (s *stack) waitForStatus(t *testing.T, key string, status int) {
	t.Helper()
	testenv.Eventually(t, 5*time.Second, func() error {
		if got := s.chat(t, key); got != status {
			return fmt.Errorf("gateway answered %d, want %d", got, status)
		}
		return nil
	})
}
