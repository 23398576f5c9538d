package kubectlplugin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/internal/devmode"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys/request"
	"github.com/codevector/codevector/keys/reveal"
)

// keysRun runs `kubectl apikey ARGS --kubeconfig KUBECONFIG` in process,
// with stdin.
func keysRun(kubeconfig, stdin string, args ...string) (stdout, stderr string, err error) {
	var o, e bytes.Buffer
	if kubeconfig != "" {
		args = append(args, "--kubeconfig", kubeconfig)
	}
	err = runKeysAs(context.Background(), "kubectl apikey", args, strings.NewReader(stdin), &o, &e)
	return o.String(), e.String(), err
}

// userKubeconfig writes a kubeconfig for a real user of the API server (a
// client certificate), with ns as the context's namespace, bound there to
// the given ClusterRoles from config/rbac.
func userKubeconfig(t *testing.T, e *testenv.Env, user, ns string, roles ...string) string {
	t.Helper()
	u, err := e.AddUser(envtest.User{Name: user}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, role := range roles {
		rb := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role + "-" + strings.NewReplacer("@", "-", ".", "-").Replace(user)},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
		}
		if err := e.Client.Create(context.Background(), rb); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := devmode.WriteKubeconfig(path, u.Config(), "test", user, ns); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	editor   = "codevector-apikey-editor"
	revealer = "codevector-apikey-revealer"
)

// TestKeysCLI goes through create, list, reveal and revoke as an ordinary
// user whose requests meet RBAC and the admission policies.
func TestKeysCLI(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)

	// create: the key alone on stdout, the guidance on stderr; the
	// namespace comes from the kubeconfig context.
	stdout, stderr, err := keysRun(alice, "", "create", "laptop", "--expires", "30d", "--display-name", "Alice's laptop")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	if !testenv.KeyLine.MatchString(stdout) {
		t.Fatalf("create printed %q... on stdout, want the key and a newline only", firstN(stdout, 12))
	}
	key := strings.TrimSpace(stdout)
	if strings.Contains(stderr, key) || strings.Contains(stderr, key[12:44]) {
		t.Error("the key (or its secret) is on stderr")
	}
	for _, want := range []string{"only time the key is shown", key[:12], ns + "/laptop"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("create's stderr lacks %q:\n%s", want, stderr)
		}
	}
	ak := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "laptop"}, ak); err != nil {
		t.Fatal(err)
	}
	if ak.Spec.Owner != "alice@example.com" || ak.Spec.DisplayName != "Alice's laptop" || ak.Spec.TTL == nil || ak.Spec.TTL.Duration != 30*24*time.Hour {
		t.Errorf("APIKey spec = %+v, want owner alice (by the admission policy), the display name and ttl 720h", ak.Spec)
	}
	if ak.Status.Reveal == nil || ak.Status.Reveal.State == gatewayv1alpha1.RevealPending {
		// The controller records the consumption when it sees the Secret go.
		testenv.Eventually(t, 10*time.Second, func() error {
			if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "laptop"}, ak); err != nil {
				return err
			}
			if ak.Status.Reveal == nil || ak.Status.Reveal.State != gatewayv1alpha1.RevealConsumed {
				return fmt.Errorf("reveal state %+v, want Consumed", ak.Status.Reveal)
			}
			return nil
		})
	}

	// list: the console's columns.
	if _, _, err := keysRun(alice, "", "create", "ci"); err != nil {
		t.Fatal(err)
	}
	stdout, _, err = keysRun(alice, "", "list")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if got := strings.Join(strings.Fields(lines[0]), " "); got != "NAME PREFIX STATUS LAST USED EXPIRES USAGE" {
		t.Errorf("list header = %q", lines[0])
	}
	wantExpiry := ak.CreationTimestamp.Add(30 * 24 * time.Hour).UTC().Format(time.DateOnly)
	for _, row := range []string{
		`^ci\s+cvk_\w{8}\s+Active\s+Never\s+-\s+-$`,
		`^laptop\s+` + regexp.QuoteMeta(key[:12]) + `\s+Active\s+Never\s+` + wantExpiry + `\s+-$`,
	} {
		if !regexp.MustCompile(`(?m)` + row).MatchString(stdout) {
			t.Errorf("list does not match %s:\n%s", row, stdout)
		}
	}
	if !strings.HasPrefix(lines[1], "ci ") {
		t.Errorf("list is not newest first:\n%s", stdout)
	}
	stdout, _, err = keysRun(alice, "", "list", "-o", "wide")
	if err != nil || !strings.Contains(stdout, "alice@example.com") || !strings.Contains(stdout, "Alice's laptop") {
		t.Errorf("list -o wide (err %v) lacks owner or display name:\n%s", err, stdout)
	}

	// revoke: asks first; "yes" on stdin confirms.
	stdout, stderr, err = keysRun(alice, "yes\n", "revoke", "laptop")
	if err != nil {
		t.Fatalf("revoke: %v\n%s", err, stderr)
	}
	if stdout != "apikey \"laptop\" revoked\n" || !strings.Contains(stderr, "This cannot be undone") {
		t.Errorf("revoke: stdout %q, stderr %q", stdout, stderr)
	}
	e.WaitForPhase(t, ns, "laptop", gatewayv1alpha1.PhaseRevoked, 10*time.Second)
	if _, stderr, err = keysRun(alice, "", "revoke", "laptop", "--yes"); err != nil || !strings.Contains(stderr, "already revoked") {
		t.Errorf("revoking twice: err %v, stderr %q", err, stderr)
	}

	// reveal: a key an admin applied for alice waits, ungenerated, until
	// she asks for it; then she receives it once, and nobody else can.
	applied := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "applied"}, Spec: gatewayv1alpha1.APIKeySpec{Owner: "alice@example.com"}}
	admin, err := e.ClientAs("carol@example.com", "system:authenticated", gatewayv1alpha1.DefaultAdminGroup, "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	if err := admin.Create(context.Background(), applied); err != nil {
		t.Fatal(err)
	}
	e.WaitForPhase(t, ns, "applied", gatewayv1alpha1.PhasePending, 10*time.Second)
	bob := userKubeconfig(t, e, "bob@example.com", ns, editor, revealer)
	if _, _, err := keysRun(bob, "", "reveal", "applied"); err == nil || !strings.Contains(err.Error(), "belongs to alice@example.com") {
		t.Errorf("bob revealing alice's key: err %v, want a refusal naming the owner", err)
	}
	stdout, _, err = keysRun(alice, "", "reveal", "applied")
	if err != nil || !testenv.KeyLine.MatchString(stdout) {
		t.Errorf("reveal of a fresh key: err %v, %d bytes on stdout", err, len(stdout))
	}
	if _, _, err := keysRun(alice, "", "reveal", "applied"); !errors.Is(err, reveal.ErrAlreadyRevealed) {
		t.Errorf("a second reveal: err %v, want %q", err, reveal.ErrAlreadyRevealed)
	}

	// Flags anywhere, -n and --context as in kubectl.
	other := e.Namespace(t)
	userKubeconfig(t, e, "alice@example.com", other, editor, revealer)
	if _, stderr, err := keysRun(alice, "", "create", "-n", other, "elsewhere"); err != nil {
		t.Errorf("create -n %s: %v\n%s", other, err, stderr)
	}
	twoContexts := withBrokenCurrentContext(t, alice)
	if _, _, err := keysRun(twoContexts, "", "list"); !errors.Is(err, errUnreachable) {
		t.Errorf("list with the broken current context: err %v, want unreachable", err)
	}
	if stdout, _, err := keysRun(twoContexts, "", "list", "--context", "test", "--namespace", other); err != nil || !strings.Contains(stdout, "elsewhere") {
		t.Errorf("list --context test --namespace %s: err %v\n%s", other, err, stdout)
	}
}

// TestKeysCLIErrors: each failure a user meets says what happened and
// what to do.
func TestKeysCLIErrors(t *testing.T) {
	e := sharedEnv(t)
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)

	check := func(t *testing.T, err error, target error, wants ...string) {
		t.Helper()
		if err == nil {
			t.Fatal("no error")
		}
		if target != nil && !errors.Is(err, target) {
			t.Errorf("error %q is not %q", err, target)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error %q does not say %q", err, w)
			}
		}
	}

	t.Run("controller not running", func(t *testing.T) {
		_, _, err := keysRun(alice, "", "create", "orphan", "--timeout", "1s")
		check(t, err, errNotIssued, "the controller did not issue the key within 1s", "is the codevector manager running?", "revoke it with 'kubectl apikey revoke orphan")
	})

	e.StartManager(t, manager.Options{})

	t.Run("no cluster", func(t *testing.T) {
		addr := testenv.FreeAddr(t) // nothing listens there
		_, _, err := keysRun(kubeconfigFor(t, "https://"+addr), "", "list")
		check(t, err, errUnreachable, "cannot reach the Kubernetes API server at https://"+addr, "Is the cluster running?", "make dev")
	})

	t.Run("no kubeconfig", func(t *testing.T) {
		t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "missing"))
		t.Setenv("HOME", t.TempDir())
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		_, _, err := keysRun("", "", "list")
		check(t, err, nil, "no Kubernetes configuration found", "--kubeconfig", "KUBECONFIG")
	})

	t.Run("CRD not installed", func(t *testing.T) {
		// A second, bare API server: nobody installed CodeVector on it.
		assets, err := testenv.Assets()
		if err != nil {
			t.Fatal(err)
		}
		bare := &envtest.Environment{BinaryAssetsDirectory: assets}
		cfg, err := bare.Start()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = bare.Stop() })
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := devmode.WriteKubeconfig(path, cfg, "bare", "admin", "default"); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"list"}, {"create", "laptop"}, {"revoke", "laptop", "--yes"}} {
			_, _, err := keysRun(path, "", args...)
			check(t, err, errCRDMissing, "apikeys.gateway.codevector.io) is not installed in the cluster at https://", "kubectl apply -k config/default")
		}
	})

	t.Run("already revealed", func(t *testing.T) {
		if _, _, err := keysRun(alice, "", "create", "once"); err != nil {
			t.Fatal(err)
		}
		stdout, _, err := keysRun(alice, "", "reveal", "once")
		check(t, err, reveal.ErrAlreadyRevealed, ns+"/once", "has already been revealed and cannot be shown again")
		if stdout != "" {
			t.Errorf("stdout = %q, want nothing", stdout)
		}
	})

	t.Run("not found", func(t *testing.T) {
		for _, args := range [][]string{{"revoke", "nothing", "--yes"}, {"reveal", "nothing"}} {
			_, _, err := keysRun(alice, "", args...)
			check(t, err, errKeyNotFound, `APIKey "nothing" not found in namespace "`+ns+`"`, "kubectl apikey list")
		}
		_, _, err := keysRun(alice, "", "list", "-n", "no-such-namespace")
		check(t, err, errForbidden) // alice may not even ask about it
	})

	t.Run("forbidden", func(t *testing.T) {
		mallory := userKubeconfig(t, e, "mallory@example.com", ns)
		_, _, err := keysRun(mallory, "", "list")
		check(t, err, errForbidden, `User "mallory@example.com" cannot list resource "apikeys"`, "codevector-apikey-editor", ns)
		_, _, err = keysRun(mallory, "", "create", "sneaky")
		check(t, err, errForbidden, `cannot create resource "apikeys"`)
	})

	t.Run("guardrails without their ConfigMap", func(t *testing.T) {
		// A namespace of its own: admission notices the bindings' removal
		// at the end only a moment later.
		ctx := context.Background()
		ns := e.Namespace(t)
		gail := userKubeconfig(t, e, "gail@example.com", ns, editor, revealer)
		g := e.BindGuardrails(t, ns, map[string]string{"maxRequestsPerMinute": "600"})
		testenv.Eventually(t, 10*time.Second, func() error { // the API server has the new bindings and params
			rpm := int64(1000)
			k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"},
				Spec: gatewayv1alpha1.APIKeySpec{Limits: &gatewayv1alpha1.Limits{RequestsPerMinute: &rpm}}}
			if err := e.Client.Create(ctx, k, client.DryRunAll); err == nil {
				return fmt.Errorf("guardrails not in force yet")
			}
			return nil
		})
		_, _, err := keysRun(gail, "", "create", "fast", "--rpm", "1000")
		check(t, err, errForbidden, "spec.limits.requestsPerMinute must be at most 600, as set by the guardrails of namespace "+ns+" (ConfigMap codevector-system/"+g.ConfigMap+")")

		// A platform admin deletes the ConfigMap; the namespace is still bound.
		if err := e.Client.Delete(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: gatewayv1alpha1.DefaultSystemNamespace, Name: g.ConfigMap}}); err != nil {
			t.Fatal(err)
		}
		testenv.Eventually(t, 10*time.Second, func() error {
			k := &gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "probe-"}}
			if e.Client.Create(ctx, k, client.DryRunAll) == nil {
				return fmt.Errorf("keys are still created in %s", ns)
			}
			return nil
		})
		_, _, err = keysRun(gail, "", "create", "unguarded")
		check(t, err, errForbidden, "new keys in namespace "+ns+" are refused: the namespace has guardrails (ValidatingAdmissionPolicyBinding apikey-guardrails."+ns+")",
			"their ConfigMap in namespace codevector-system is missing", "Only a cluster admin can fix this")
	})

	t.Run("forbidden to read the reveal Secret", func(t *testing.T) {
		bob := userKubeconfig(t, e, "bob@example.com", ns, editor)
		_, _, err := keysRun(bob, "", "create", "bobs")
		check(t, err, errForbidden, `cannot get resource "secrets"`, "codevector-apikey-revealer", "create keys in the console", "The APIKey "+ns+"/bobs was created")
	})

	t.Run("already exists", func(t *testing.T) {
		if _, _, err := keysRun(alice, "", "create", "twin"); err != nil {
			t.Fatal(err)
		}
		_, _, err := keysRun(alice, "", "create", "twin")
		check(t, err, nil, `an APIKey named "twin" already exists in namespace "`+ns+`"`)
	})

	t.Run("usage", func(t *testing.T) {
		_, _, err := keysRun(alice, "", "create")
		check(t, err, nil, "missing NAME")
		_, _, err = keysRun(alice, "", "create", "a", "b")
		check(t, err, nil, `unexpected argument "b"`)
		_, _, err = keysRun(alice, "", "create", "a", "--expires", "2020-01-01")
		check(t, err, nil, "--expires 2020-01-01 is in the past")
		_, _, err = keysRun(alice, "", "frobnicate")
		check(t, err, nil, `unknown command "frobnicate"`)
		_, _, err = keysRun(alice, "", "revoke", "twin")
		check(t, err, nil, "not revoked: no confirmation (pass --yes")
	})
}

func TestSetExpiry(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in       string
		ttl      time.Duration
		at       string
		errorHas string
	}{
		{in: ""},
		{in: "never"},
		{in: "30d", ttl: 720 * time.Hour},
		{in: "2w", ttl: 14 * 24 * time.Hour},
		{in: "12h", ttl: 12 * time.Hour},
		{in: "90m", ttl: 90 * time.Minute},
		{in: "2027-01-01", at: "2027-01-01T00:00:00Z"},
		{in: "2027-01-01T09:30:00+02:00", at: "2027-01-01T07:30:00Z"},
		{in: "2026-06-01", errorHas: "in the past"},
		{in: "0d", errorHas: "positive"},
		{in: "-5h", errorHas: "positive"},
		{in: "soon", errorHas: "want a lifetime"},
	} {
		var spec gatewayv1alpha1.APIKeySpec
		err := setExpiry(&spec, tc.in, now)
		switch {
		case tc.errorHas != "":
			if err == nil || !strings.Contains(err.Error(), tc.errorHas) {
				t.Errorf("%q: err %v, want one saying %q", tc.in, err, tc.errorHas)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		gotTTL := time.Duration(0)
		if spec.TTL != nil {
			gotTTL = spec.TTL.Duration
		}
		gotAt := ""
		if spec.ExpiresAt != nil {
			gotAt = spec.ExpiresAt.Time.UTC().Format(time.RFC3339)
		}
		if gotTTL != tc.ttl || gotAt != tc.at {
			t.Errorf("%q: ttl %v expiresAt %q, want %v %q", tc.in, gotTTL, gotAt, tc.ttl, tc.at)
		}
	}
}

func TestKeyStatusAndLastUsed(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { t := metav1.NewTime(now.Add(d)); return &t }
	for _, tc := range []struct {
		name   string
		key    gatewayv1alpha1.APIKey
		status gatewayv1alpha1.Phase
		last   string
	}{
		{"new", gatewayv1alpha1.APIKey{}, gatewayv1alpha1.PhasePending, "Never"},
		{"active", gatewayv1alpha1.APIKey{Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, LastUsedAt: at(-30 * time.Second)}}, gatewayv1alpha1.PhaseActive, "just now"},
		{"revoked, controller not there yet", gatewayv1alpha1.APIKey{Spec: gatewayv1alpha1.APIKeySpec{Revoked: true}, Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, LastUsedAt: at(-time.Minute)}}, gatewayv1alpha1.PhaseRevoked, "1 minute ago"},
		{"past its expiry", gatewayv1alpha1.APIKey{Spec: gatewayv1alpha1.APIKeySpec{ExpiresAt: gatewayv1alpha1.NewExpiry(at(-time.Second).Time)}, Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, LastUsedAt: at(-3 * time.Hour)}}, gatewayv1alpha1.PhaseExpired, "3 hours ago"},
		{"failed", gatewayv1alpha1.APIKey{Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseFailed, LastUsedAt: at(-50 * time.Hour)}}, gatewayv1alpha1.PhaseFailed, "2 days ago"},
		{"used long ago", gatewayv1alpha1.APIKey{Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive, LastUsedAt: at(-400 * 24 * time.Hour)}}, gatewayv1alpha1.PhaseActive, "1 year ago"},
		{"deleted, finalizer waiting for the manager", gatewayv1alpha1.APIKey{ObjectMeta: metav1.ObjectMeta{DeletionTimestamp: at(-time.Minute), Finalizers: []string{gatewayv1alpha1.Finalizer}},
			Status: gatewayv1alpha1.APIKeyStatus{Phase: gatewayv1alpha1.PhaseActive}}, gatewayv1alpha1.PhaseRevoked, "Never"},
	} {
		if got := keyStatus(&tc.key, now); got != tc.status {
			t.Errorf("%s: status %s, want %s", tc.name, got, tc.status)
		}
		if got := lastUsed(&tc.key, now); got != tc.last {
			t.Errorf("%s: last used %q, want %q", tc.name, got, tc.last)
		}
	}
}

// kubeconfigFor points a kubeconfig at server, with no credentials worth
// anything.
func kubeconfigFor(t *testing.T, server string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: server, InsecureSkipTLSVerify: true}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{Token: "nothing"}
	kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u", Namespace: "default"}
	kc.CurrentContext = "c"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// withBrokenCurrentContext copies the kubeconfig at path (context "test")
// and adds a current context "broken" whose server is unreachable.
func withBrokenCurrentContext(t *testing.T, path string) string {
	t.Helper()
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	kc.Clusters["broken"] = &clientcmdapi.Cluster{Server: "https://" + testenv.FreeAddr(t), InsecureSkipTLSVerify: true}
	kc.Contexts["broken"] = &clientcmdapi.Context{Cluster: "broken", AuthInfo: kc.Contexts["test"].AuthInfo}
	kc.CurrentContext = "broken"
	out := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, out); err != nil {
		t.Fatal(err)
	}
	return out
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// create's policy flags become the key's spec; a budget the CLI cannot
// read is refused before anything is created.
func TestKeysCLICreateWithPolicy(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)

	_, stderr, err := keysRun(alice, "", "create", "bot", "--models", "gpt-4o-mini*, claude-haiku-*", "--rpm", "60", "--tpm", "100000", "--concurrency", "4", "--budget", "5usd/day")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	ak := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "bot"}, ak); err != nil {
		t.Fatal(err)
	}
	s := ak.Spec
	if len(s.Models) != 2 || s.Models[0] != "gpt-4o-mini*" || s.Models[1] != "claude-haiku-*" ||
		s.Limits == nil || *s.Limits.RequestsPerMinute != 60 || *s.Limits.TokensPerMinute != 100000 || *s.Limits.ConcurrentRequests != 4 ||
		s.Budget.Summary() != "$5/day" {
		t.Errorf("spec = %+v, limits %+v, budget %+v", s, s.Limits, s.Budget)
	}

	_, stderr, err = keysRun(alice, "", "create", "bad", "--budget", "5eur/month")
	if err == nil || !strings.Contains(stderr+err.Error(), "give an amount in usd or tokens, like 50usd/month") {
		t.Errorf("a budget in euros: err %v, stderr %s", err, stderr)
	}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "bad"}, ak); err == nil {
		t.Error("the APIKey was created despite the bad --budget")
	}
}

// rotate gives the same APIKey a new key, printed alone on stdout; the old
// one is kept for the grace period, shown in status.previous; only the
// owner can rotate.
func TestKeysCLIRotate(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)

	first, stderr, err := keysRun(alice, "", "create", "laptop")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	before := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "laptop"}, before); err != nil {
		t.Fatal(err)
	}

	second, stderr, err := keysRun(alice, "", "rotate", "laptop", "--grace", "2h")
	if err != nil {
		t.Fatalf("rotate: %v\n%s", err, stderr)
	}
	if !testenv.KeyLine.MatchString(second) || second == first {
		t.Fatalf("rotate printed %q... on stdout, want a new key alone", firstN(second, 12))
	}
	after := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "laptop"}, after); err != nil {
		t.Fatal(err)
	}
	if after.UID != before.UID || after.Status.Prefix != second[:12] || after.Status.Previous == nil || after.Status.Previous.Prefix != first[:12] {
		t.Errorf("after rotate: uid %s (was %s), prefix %s, previous %+v; want the same APIKey with the new prefix and the old one as previous", after.UID, before.UID, after.Status.Prefix, after.Status.Previous)
	}
	if !strings.Contains(stderr, "The old key "+first[:12]+" keeps working until") || strings.Contains(stderr, second[12:44]) {
		t.Errorf("rotate's stderr:\n%s", stderr)
	}

	out, _, err := keysRun(alice, "", "get", "laptop")
	if err != nil || !strings.Contains(out, "Old key:") || !strings.Contains(out, first[:12]+" still works until") || !strings.Contains(out, "never used since the rotation") {
		t.Errorf("get after a rotation (%v):\n%s", err, out)
	}
	if _, stderr, err := keysRun(alice, "", "create", "short", "--expires", "3d"); err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	out, _, _ = keysRun(alice, "", "list")
	if !regexp.MustCompile(`(?m)^short\s.* UTC \(in 3 days\)`).MatchString(out) || regexp.MustCompile(`(?m)^laptop\s.*\(in `).MatchString(out) {
		t.Errorf("list should flag only the key expiring within a week:\n%s", out)
	}

	// An admin (even one RBAC lets do anything) cannot receive alice's key.
	carol := e.KubeconfigFor(t, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup, "system:masters")
	_, stderr, err = keysRun(carol, "", "rotate", "laptop", "-n", ns)
	if err == nil || !strings.Contains(stderr+err.Error(), "only the key's owner (alice@example.com) can rotate") {
		t.Errorf("an admin rotating alice's key: %v\n%s", err, stderr)
	}
}

// A key in use has its status written by the gateways (last use, usage)
// every few seconds; rotate must not fail when one of those writes lands
// between its read of the APIKey and its conditional patch.
func TestKeysCLIRotateWhileTheKeyIsInUse(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)
	first, stderr, err := keysRun(alice, "", "create", "laptop")
	if err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	name := types.NamespacedName{Namespace: ns, Name: "laptop"}

	// rotate reads the clock between its read and its patch: write the
	// status there, as a gateway recording the key's last use would.
	var gatewayWrites int
	now := func() time.Time {
		if gatewayWrites == 0 {
			// As a gateway does, again on a conflict with the controller's
			// own status writes just after the create.
			err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
				k := &gatewayv1alpha1.APIKey{}
				if err := e.Client.Get(context.Background(), name, k); err != nil {
					return err
				}
				k.Status.LastUsedAt = &metav1.Time{Time: time.Now().Truncate(time.Second)}
				return e.Client.Status().Update(context.Background(), k)
			})
			if err != nil {
				t.Errorf("writing the key's last use: %v", err)
			}
		}
		gatewayWrites++
		return time.Now()
	}
	var o, eb bytes.Buffer
	err = runKeysAt(context.Background(), now, "kubectl apikey", []string{"rotate", "laptop", "--kubeconfig", alice}, strings.NewReader(""), &o, &eb)
	if err != nil {
		t.Fatalf("rotate while a gateway writes the key's status: %v\n%s", err, eb.String())
	}
	if gatewayWrites < 2 {
		t.Fatalf("the clock was read %d times; the test no longer writes between rotate's read and its patch", gatewayWrites)
	}
	second := o.String()
	after := &gatewayv1alpha1.APIKey{}
	if err := e.Client.Get(context.Background(), name, after); err != nil {
		t.Fatal(err)
	}
	if !testenv.KeyLine.MatchString(second) || after.Status.Prefix != second[:12] || after.Status.Previous == nil || after.Status.Previous.Prefix != first[:12] {
		t.Errorf("after rotate: printed %q..., prefix %s, previous %+v", firstN(second, 12), after.Status.Prefix, after.Status.Previous)
	}
}

// The owner runs reveal while a rotation the console asked for waits to be
// shown there: the new key is sealed to the console's request, so reveal
// says so and what to do instead, rather than the API server's refusal to
// read a Secret in the system namespace.
func TestRevealWhileTheConsoleShowsARotation(t *testing.T) {
	e := sharedEnv(t)
	e.StartManager(t, manager.Options{})
	ns := e.Namespace(t)
	alice := userKubeconfig(t, e, "alice@example.com", ns, editor, revealer)
	if _, stderr, err := keysRun(alice, "", "create", "laptop"); err != nil {
		t.Fatalf("create: %v\n%s", err, stderr)
	}
	gateway, err := e.ClientAs("system:serviceaccount:"+gatewayv1alpha1.DefaultSystemNamespace+":codevector-gateway",
		"system:serviceaccounts", "system:serviceaccounts:"+gatewayv1alpha1.DefaultSystemNamespace)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	nn := types.NamespacedName{Namespace: ns, Name: "laptop"}
	// As the console asks for a rotation (gateway/console).
	var r request.Rotation
	live := &gatewayv1alpha1.APIKey{}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := e.Client.Get(ctx, nn, live); err != nil {
			return err
		}
		if r, err = request.NewRotation(live, time.Now(), time.Hour, testenv.RevealKey().PublicKey(), gatewayv1alpha1.RevealInSystemNamespace); err != nil {
			return err
		}
		return gateway.Patch(ctx, live, r.Patch)
	})
	if err != nil {
		t.Fatalf("the console's rotation: %v", err)
	}
	testenv.Eventually(t, 15*time.Second, func() error {
		k := &gatewayv1alpha1.APIKey{}
		if err := e.Client.Get(ctx, nn, k); err != nil {
			return err
		}
		if rs := k.Status.Reveal; rs == nil || rs.State != gatewayv1alpha1.RevealPending || rs.SecretNamespace != gatewayv1alpha1.DefaultSystemNamespace {
			return fmt.Errorf("status.reveal %+v: the rotation's reveal is not written yet", rs)
		}
		return nil
	})

	_, stderr, err := keysRun(alice, "", "reveal", "laptop")
	if err == nil || !errors.Is(err, errRevealedInConsole) || !strings.Contains(stderr+err.Error(), "run kubectl apikey rotate laptop") {
		t.Errorf("reveal while the console shows the rotated key: %v\n%s", err, stderr)
	}

	// The console still shows it, once.
	_, plain, err := request.Receive(ctx, gateway, nn, live.UID, 15*time.Second, r.Done, testenv.RevealKey())
	if err != nil {
		t.Fatalf("the console receiving the rotated key after the owner's reveal: %v", err)
	}
	e.Issued(plain)
}
