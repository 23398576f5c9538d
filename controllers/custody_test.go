package controllers_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
	"github.com/codevector/codevector/controllers"
	"github.com/codevector/codevector/internal/manager"
	"github.com/codevector/codevector/internal/testenv"
	"github.com/codevector/codevector/keys"
	"github.com/codevector/codevector/keys/reveal"
	"github.com/codevector/codevector/keys/seal"
)

// Key custody (docs/design.md, section 11), tried as teammates in one namespace
// would: alice and bob both hold the editor and revealer roles in it,
// carol is an admin.

// bindRole binds the ClusterRole role to user in ns.
func bindRole(t *testing.T, ns, user, role string) {
	t.Helper()
	b := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role + "-" + strings.NewReplacer("@", "-at-", ":", "-").Replace(user)},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	}
	if err := env.Client.Create(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// teammate is userClient plus the revealer role: get and delete on every
// Secret in ns, as the built-in edit role also gives.
func teammate(t *testing.T, ns, name string, groups ...string) client.Client {
	t.Helper()
	c := userClient(t, ns, name, groups...)
	bindRole(t, ns, name, "codevector-apikey-revealer")
	return c
}

// teammates starts a manager and returns a new namespace with alice and bob
// in it, each with the editor and revealer roles.
func teammates(t *testing.T) (ns string, alice, bob client.Client) {
	t.Helper()
	applyPeopleRoles(t)
	env.StartManager(t, manager.Options{})
	ns = env.Namespace(t)
	return ns, teammate(t, ns, "alice@example.com"), teammate(t, ns, "bob@example.com")
}

func applyPeopleRoles(t *testing.T) {
	t.Helper()
	for _, f := range []string{"apikey_editor_role.yaml", "apikey_revealer_role.yaml"} {
		if err := env.ApplyFile(context.Background(), env.Root+"/config/rbac/"+f); err != nil {
			t.Fatal(err)
		}
	}
}

// createSealed creates an APIKey as c, sealed to a new private key, and
// returns both once the controller has issued it.
func createSealed(t *testing.T, c client.Client, ns, name string) (*gatewayv1alpha1.APIKey, *seal.PrivateKey) {
	t.Helper()
	private, err := seal.NewPrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	k := newKey(ns, name, func(k *gatewayv1alpha1.APIKey) { k.Spec.RevealPublicKey = private.PublicKey() })
	if err := c.Create(context.Background(), k); err != nil {
		t.Fatalf("creating %s: %v", name, err)
	}
	return env.WaitForPhase(t, ns, name, gatewayv1alpha1.PhaseActive, 10*time.Second), private
}

func TestTeammateCannotCopyANewKey(t *testing.T) {
	ns, alice, bob := teammates(t)
	ctx := context.Background()

	k, alicePrivate := createSealed(t, alice, ns, "laptop")

	// bob reads the reveal Secret before alice does, and leaves it there.
	copied := &corev1.Secret{}
	if err := bob.Get(ctx, types.NamespacedName{Namespace: ns, Name: gatewayv1alpha1.RevealSecretName(k.Name)}, copied); err != nil {
		t.Fatalf("bob reading the reveal Secret (his role allows it): %v", err)
	}
	if _, ok := copied.Data[gatewayv1alpha1.RevealSecretPlainKey]; ok {
		t.Fatal("the reveal Secret holds the key in plaintext")
	}
	bobPrivate, _ := seal.NewPrivateKey()
	if _, err := bobPrivate.Open(k.UID, copied.Data[gatewayv1alpha1.RevealSecretSealedKey]); !errors.Is(err, seal.ErrCannotOpen) {
		t.Fatalf("bob opening alice's sealed key: err = %v, want ErrCannotOpen", err)
	}
	// Nor can he consume it: the reveal is sealed to alice's request.
	if _, err := reveal.Consume(ctx, bob, k, bobPrivate); !errors.Is(err, reveal.ErrSealedToAnother) {
		t.Fatalf("bob consuming alice's reveal: err = %v, want ErrSealedToAnother", err)
	}

	// alice still gets her key, and it is the one the hash verifies.
	plain, err := reveal.Consume(ctx, alice, k, alicePrivate)
	if err != nil {
		t.Fatalf("alice's reveal: %v", err)
	}
	hash, _ := hashSecretOf(t, k)
	if ok, _ := keys.Verify(plain, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok {
		t.Fatal("alice's key does not verify against its hash")
	}
	if bytes.Contains(copied.Data[gatewayv1alpha1.RevealSecretSealedKey], []byte(plain.Reveal())) {
		t.Fatal("bob's copy contains alice's key")
	}
}

// A cluster admin reads everything an admin can during the reveal window
// and finds no key. The same scan in --reveal-mode=plain finds it, which
// shows the scan looks in the right places.
func TestNoFullKeyAnywhereInTheClusterDuringTheRevealWindow(t *testing.T) {
	applyPeopleRoles(t)
	ctx := context.Background()

	t.Run("sealed", func(t *testing.T) {
		env.StartManager(t, manager.Options{})
		ns := env.Namespace(t)
		alice := teammate(t, ns, "alice@example.com")
		k, private := createSealed(t, alice, ns, "laptop")
		plain := peekSealed(t, k, private)
		if where := scanCluster(t, plain); where != "" {
			t.Fatalf("a cluster admin found the key in %s", where)
		}
	})

	t.Run("plain mode finds it", func(t *testing.T) {
		env.StartManager(t, manager.Options{RevealMode: controllers.RevealPlain})
		ns := env.Namespace(t)
		create(t, newKey(ns, "applied", unsealed))
		k := env.WaitForPhase(t, ns, "applied", gatewayv1alpha1.PhaseActive, 10*time.Second)
		plain, err := reveal.Consume(ctx, env.Client, k.DeepCopy(), nil)
		if err != nil {
			t.Fatal(err)
		}
		// Consumed: gone. Issue another and scan before anyone reads it.
		create(t, newKey(ns, "applied-2", unsealed))
		k2 := env.WaitForPhase(t, ns, "applied-2", gatewayv1alpha1.PhaseActive, 10*time.Second)
		s, _ := secret(t, ns, gatewayv1alpha1.RevealSecretName(k2.Name))
		plain2, err := keys.Parse(string(s.Data[gatewayv1alpha1.RevealSecretPlainKey]))
		if err != nil {
			t.Fatal(err)
		}
		if where := scanCluster(t, plain2); !strings.HasPrefix(where, "Secret ") {
			t.Fatalf("plain mode: the scan found the key in %q, want the reveal Secret", where)
		}
		if where := scanCluster(t, plain); where != "" {
			t.Errorf("plain mode: a consumed key is still in %s", where)
		}
	})
}

// peekSealed opens k's reveal with private without consuming it.
func peekSealed(t *testing.T, k *gatewayv1alpha1.APIKey, private *seal.PrivateKey) keys.Key {
	t.Helper()
	s, ok := secret(t, k.Namespace, gatewayv1alpha1.RevealSecretName(k.Name))
	if !ok {
		t.Fatal("no reveal Secret")
	}
	plain, err := private.Open(k.UID, s.Data[gatewayv1alpha1.RevealSecretSealedKey])
	if err != nil {
		t.Fatal(err)
	}
	return plain
}

// scanCluster reads, as cluster admin, every Secret, ConfigMap, Event and
// APIKey in every namespace and returns where the key (or its secret part,
// or either in base64) appears, or "".
func scanCluster(t *testing.T, k keys.Key) string {
	t.Helper()
	full := k.Reveal()
	secretPart := full[keys.DisplayPrefixLength : keys.DisplayPrefixLength+keys.SecretLength]
	needles := [][]byte{[]byte(full), []byte(secretPart), []byte(base64.StdEncoding.EncodeToString([]byte(full)))}
	lists := map[string]client.ObjectList{
		"Secret": &corev1.SecretList{}, "ConfigMap": &corev1.ConfigMapList{},
		"Event": &corev1.EventList{}, "events.k8s.io Event": &eventsv1.EventList{},
		"APIKey": &gatewayv1alpha1.APIKeyList{},
	}
	for kind, list := range lists {
		if err := env.Client.List(context.Background(), list); err != nil {
			t.Fatalf("listing %s: %v", kind, err)
		}
		items, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range needles {
			if i := bytes.Index(items, n); i >= 0 {
				// Name the object: the nearest "name" before the hit.
				before := items[:i]
				name := ""
				if j := bytes.LastIndex(before, []byte(`"name":"`)); j >= 0 {
					rest := before[j+8:]
					name = string(rest[:bytes.IndexByte(rest, '"')])
				}
				return kind + " " + name
			}
		}
	}
	return ""
}

func TestOnlyTheOwnerChangesOrDeletesAKey(t *testing.T) {
	ns, alice, bob := teammates(t)
	carol := userClient(t, ns, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	ctx := context.Background()

	mine, _ := createSealed(t, alice, ns, "alice-laptop")
	other, _ := createSealed(t, alice, ns, "alice-ci")

	changes := map[string]func(*gatewayv1alpha1.APIKey){
		"revoke":  func(k *gatewayv1alpha1.APIKey) { k.Spec.Revoked = true },
		"rename":  func(k *gatewayv1alpha1.APIKey) { k.Spec.DisplayName = "bob's now" },
		"relabel": func(k *gatewayv1alpha1.APIKey) { k.Labels = map[string]string{"team": "bob"} },
	}
	for what, change := range changes {
		k := get(t, ns, mine.Name)
		base := k.DeepCopy()
		change(k)
		err := bob.Patch(ctx, k, client.MergeFrom(base))
		if err == nil || !strings.Contains(err.Error(), "belongs to alice@example.com") {
			t.Errorf("bob trying to %s alice's key: err = %v, want a refusal naming the owner", what, err)
		}
	}
	if err := bob.Delete(ctx, get(t, ns, mine.Name)); err == nil || !strings.Contains(err.Error(), "only its owner") {
		t.Errorf("bob deleting alice's key: err = %v, want a refusal", err)
	}
	if k := get(t, ns, mine.Name); k.Spec.Revoked || k.Spec.DisplayName != "" || k.Labels["team"] != "" || !k.DeletionTimestamp.IsZero() {
		t.Fatalf("alice's key was changed: revoked %v, display name %q, labels %v, deleting %v", k.Spec.Revoked, k.Spec.DisplayName, k.Labels, !k.DeletionTimestamp.IsZero())
	}

	// alice relabels her own key; carol, an admin, revokes it and deletes
	// the other one.
	k := get(t, ns, mine.Name)
	base := k.DeepCopy()
	k.Labels = map[string]string{"device": "laptop"}
	if err := alice.Patch(ctx, k, client.MergeFrom(base)); err != nil {
		t.Errorf("alice relabelling her own key: %v", err)
	}
	k = get(t, ns, mine.Name)
	base = k.DeepCopy()
	k.Spec.Revoked = true
	if err := carol.Patch(ctx, k, client.MergeFrom(base)); err != nil {
		t.Errorf("an admin revoking alice's key: %v", err)
	}
	env.WaitForPhase(t, ns, mine.Name, gatewayv1alpha1.PhaseRevoked, 10*time.Second)
	if err := carol.Delete(ctx, get(t, ns, other.Name)); err != nil {
		t.Errorf("an admin deleting alice's key: %v", err)
	}

	// What cleans up after everyone still can: the namespace controller
	// deleting what is left in a namespace being deleted.
	cleaner := userClient(t, ns, "system:serviceaccount:kube-system:namespace-controller")
	if err := cleaner.Delete(ctx, get(t, ns, mine.Name)); err != nil {
		t.Errorf("the namespace controller deleting a key: %v", err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		var left gatewayv1alpha1.APIKeyList
		if err := env.Client.List(ctx, &left, client.InNamespace(ns)); err != nil {
			return err
		}
		if len(left.Items) > 0 {
			return errors.New("APIKeys remain: the finalizer was not removed")
		}
		return nil
	})
}

func TestOnlyTheOwnerReceivesAKeyMadeForThem(t *testing.T) {
	ns, alice, bob := teammates(t)
	carol := userClient(t, ns, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	ctx := context.Background()

	// An admin cannot create a key for bob sealed to a key of her own.
	err := carol.Create(ctx, newKey(ns, "sealed-for-bob", func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "bob@example.com" }))
	if err == nil || !strings.Contains(err.Error(), "only the key's owner (bob@example.com) can set spec.revealPublicKey") {
		t.Fatalf("admin creating a key for bob with her public key: err = %v, want a refusal", err)
	}

	// Without one, the key waits for bob, and no key exists yet.
	if err := carol.Create(ctx, newKey(ns, "for-bob", unsealed, func(k *gatewayv1alpha1.APIKey) { k.Spec.Owner = "bob@example.com" })); err != nil {
		t.Fatal(err)
	}
	k := env.WaitForPhase(t, ns, "for-bob", gatewayv1alpha1.PhasePending, 10*time.Second)
	testenv.Eventually(t, 10*time.Second, func() error {
		k = get(t, ns, "for-bob")
		if c := findCondition(k, gatewayv1alpha1.ConditionReady); c == nil || c.Reason != gatewayv1alpha1.ReasonAwaitingRevealKey || !strings.Contains(c.Message, "kubectl apikey reveal for-bob") {
			return errors.New("no AwaitingRevealKey condition naming the command yet")
		}
		return nil
	})
	time.Sleep(500 * time.Millisecond) // a pass that would issue has had its chance
	if _, ok := hashSecretOf(t, k); ok {
		t.Fatal("a hash Secret exists for a key nobody asked to receive")
	}
	if _, ok := secret(t, ns, gatewayv1alpha1.RevealSecretName("for-bob")); ok {
		t.Fatal("a reveal Secret exists for a key nobody asked to receive")
	}

	// alice and carol cannot ask for bob's key (alice may not change it at
	// all; carol may revoke it, but not receive it).
	intruder, _ := seal.NewPrivateKey()
	for name, c := range map[string]client.Client{"alice": alice, "carol (admin)": carol} {
		k := get(t, ns, "for-bob")
		base := k.DeepCopy()
		k.Spec.RevealPublicKey = intruder.PublicKey()
		if err := c.Patch(ctx, k, client.MergeFrom(base)); err == nil || !strings.Contains(err.Error(), "bob@example.com") {
			t.Errorf("%s setting bob's revealPublicKey: err = %v, want a refusal", name, err)
		}
	}

	// bob can, once; then the key is issued, sealed to him.
	bobPrivate, _ := seal.NewPrivateKey()
	k = get(t, ns, "for-bob")
	base := k.DeepCopy()
	k.Spec.RevealPublicKey = bobPrivate.PublicKey()
	if err := bob.Patch(ctx, k, client.MergeFrom(base)); err != nil {
		t.Fatalf("bob asking for his key: %v", err)
	}
	k = env.WaitForPhase(t, ns, "for-bob", gatewayv1alpha1.PhaseActive, 10*time.Second)
	// A second reveal request, by bob or anyone, is refused.
	again := k.DeepCopy()
	again.Spec.RevealPublicKey = intruder.PublicKey()
	if err := bob.Patch(ctx, again, client.MergeFrom(k)); err == nil || !strings.Contains(err.Error(), "revealPublicKey can be set once") {
		t.Errorf("a second reveal request: err = %v, want \"revealPublicKey can be set once\"", err)
	}
	plain, err := reveal.Consume(ctx, bob, get(t, ns, "for-bob"), bobPrivate)
	if err != nil {
		t.Fatalf("bob's reveal: %v", err)
	}
	hash, _ := hashSecretOf(t, k)
	if ok, _ := keys.Verify(plain, string(hash.Data[gatewayv1alpha1.HashSecretKey])); !ok {
		t.Error("bob's key does not verify")
	}
}

// Planting a reveal Secret while the key waits to be read, or after it was
// read, changes nothing: the reader refuses a Secret the controller did
// not write, and the controller never reads one.
func TestPlantedRevealDuringAndAfterIssue(t *testing.T) {
	ns, alice, bob := teammates(t)
	ctx := context.Background()

	// During: bob swaps alice's reveal Secret for one holding a key he
	// chose, sealed to alice's (public) key, with her key's prefix.
	k, alicePrivate := createSealed(t, alice, ns, "laptop")
	revealName := types.NamespacedName{Namespace: ns, Name: gatewayv1alpha1.RevealSecretName(k.Name)}
	if err := bob.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: revealName.Name}}); err != nil {
		t.Fatal(err)
	}
	chosen, _ := keys.Generate()
	chosen, _ = keys.WithID(chosen, strings.TrimPrefix(k.Status.Prefix, "cvk_"))
	plantReveal(t, k, chosen)
	got, err := reveal.Consume(ctx, alice, get(t, ns, k.Name), alicePrivate)
	if err == nil {
		t.Fatalf("alice accepted a planted reveal (got %s)", got.DisplayPrefix())
	}
	t.Logf("alice's reveal after the swap: %v", err)

	// After: a key already read. A planted Secret is ignored by the
	// controller; the key and its hash stay as they were.
	k2, private2 := createSealed(t, alice, ns, "ci")
	plain2, err := reveal.Consume(ctx, alice, k2, private2)
	if err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 10*time.Second, func() error {
		if s := get(t, ns, "ci").Status.Reveal; s == nil || s.State != gatewayv1alpha1.RevealConsumed {
			return errors.New("reveal not yet recorded as consumed")
		}
		return nil
	})
	plantReveal(t, get(t, ns, "ci"), chosen)
	hashBefore, _ := hashSecretOf(t, k2)
	time.Sleep(time.Second)
	after := get(t, ns, "ci")
	hashAfter, _ := hashSecretOf(t, after)
	if after.Status.Phase != gatewayv1alpha1.PhaseActive || after.Status.Prefix != plain2.DisplayPrefix() || hashAfter.UID != hashBefore.UID {
		t.Errorf("planting after the reveal changed the key: %s %s", after.Status.Phase, after.Status.Prefix)
	}
	if _, err := reveal.Consume(ctx, alice, after, private2); !errors.Is(err, reveal.ErrAlreadyRevealed) {
		t.Errorf("consuming a planted Secret after the reveal: err = %v, want ErrAlreadyRevealed", err)
	}
}

// A second hash Secret carrying a key's ID (only writable by hand in the
// system namespace) is reported on the key, and changes nothing about it.
func TestSecondKeyIDClaimantIsReported(t *testing.T) {
	env.StartManager(t, manager.Options{})
	ns := env.Namespace(t)
	victim, victimKey := env.IssueKey(t, ns, "victim")
	intruder := create(t, newKey(ns, "intruder", unsealed))
	chosen, _ := keys.Generate()
	chosen, _ = keys.WithID(chosen, victimKey.ID())
	plantHash(t, intruder, chosen)

	// Any pass over the victim notices it. (30 s: the whole package runs
	// at once under make test, and this pass once took longer than 10.)
	if err := patchSpec(t, victim, func(k *gatewayv1alpha1.APIKey) { k.Spec.DisplayName = "nudged" }); err != nil {
		t.Fatal(err)
	}
	testenv.Eventually(t, 30*time.Second, func() error {
		var evs eventsv1.EventList
		if err := env.Client.List(context.Background(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Reason == "KeyIDClaimedTwice" && e.Regarding.Name == victim.Name && e.Type == corev1.EventTypeWarning {
				return nil
			}
		}
		return errors.New("no KeyIDClaimedTwice warning on the victim yet")
	})
	if k := get(t, ns, victim.Name); k.Status.Phase != gatewayv1alpha1.PhaseActive || k.Status.Prefix != victimKey.DisplayPrefix() {
		t.Errorf("the victim changed: %s %s", k.Status.Phase, k.Status.Prefix)
	}
}

// In --reveal-mode=plain an admin who creates a key for alice, even
// claiming alice created it, is not handed it in a plaintext reveal Secret
// she can read: the key waits for alice's reveal, sealed to her. A key
// alice creates for herself is still revealed in plain (issue 24).
func TestPlainModeRevealsOnlyKeysTheirOwnerCreated(t *testing.T) {
	applyPeopleRoles(t)
	env.StartManager(t, manager.Options{RevealMode: controllers.RevealPlain})
	ns := env.Namespace(t)
	alice := teammate(t, ns, "alice@example.com")
	carol := teammate(t, ns, "carol@example.com", gatewayv1alpha1.DefaultAdminGroup)
	ctx := context.Background()

	forged := func(k *gatewayv1alpha1.APIKey) {
		k.Spec.Owner = "alice@example.com"
		k.Annotations = map[string]string{gatewayv1alpha1.AnnotationCreatedBy: "alice@example.com"}
	}
	if err := carol.Create(ctx, newKey(ns, "for-alice", unsealed, forged)); err != nil {
		t.Fatal(err)
	}
	var k *gatewayv1alpha1.APIKey
	testenv.Eventually(t, 10*time.Second, func() error {
		k = get(t, ns, "for-alice")
		c := findCondition(k, gatewayv1alpha1.ConditionReady)
		if k.Status.Phase != gatewayv1alpha1.PhasePending || c == nil || c.Reason != gatewayv1alpha1.ReasonAwaitingRevealKey ||
			!strings.Contains(c.Message, "created by carol@example.com for alice@example.com") || !strings.Contains(c.Message, "kubectl apikey reveal for-alice") {
			return fmt.Errorf("phase %s, condition %+v: want Pending, awaiting alice's reveal", k.Status.Phase, c)
		}
		return nil
	})
	if got := k.Annotations[gatewayv1alpha1.AnnotationCreatedBy]; got != "carol@example.com" {
		t.Errorf("created-by = %q, want carol@example.com whatever the request said", got)
	}
	if len(eventsOf(t, k, "PlainRevealRefused")) == 0 {
		t.Error("no PlainRevealRefused event on the key")
	}
	if _, ok := hashSecretOf(t, k); ok {
		t.Fatal("a key was generated for alice before she asked for it")
	}
	if _, err := reveal.Consume(ctx, carol, k, nil); !errors.Is(err, reveal.ErrNotReady) {
		t.Fatalf("carol reading alice's key: err = %v, want ErrNotReady", err)
	}
	// Nor can carol rewrite who created it.
	base := k.DeepCopy()
	k.Annotations[gatewayv1alpha1.AnnotationCreatedBy] = "alice@example.com"
	if err := carol.Patch(ctx, k, client.MergeFrom(base)); err == nil || !strings.Contains(err.Error(), "cannot be changed") {
		t.Fatalf("carol changing created-by: err = %v, want a refusal", err)
	}

	// alice asks for it: issued sealed to her, nothing in plaintext.
	alicePrivate, _ := seal.NewPrivateKey()
	k = get(t, ns, "for-alice")
	base = k.DeepCopy()
	k.Spec.RevealPublicKey = alicePrivate.PublicKey()
	if err := alice.Patch(ctx, k, client.MergeFrom(base)); err != nil {
		t.Fatalf("alice asking for her key: %v", err)
	}
	k = env.WaitForPhase(t, ns, "for-alice", gatewayv1alpha1.PhaseActive, 10*time.Second)
	if s, _ := secret(t, ns, gatewayv1alpha1.RevealSecretNameOf(k)); s == nil || len(s.Data[gatewayv1alpha1.RevealSecretPlainKey]) > 0 {
		t.Fatal("alice's key is in plaintext in its reveal Secret")
	}
	if _, err := reveal.Consume(ctx, carol, k, nil); err == nil {
		t.Fatal("carol received alice's key")
	}
	plain, err := reveal.Consume(ctx, alice, k, alicePrivate)
	if err != nil {
		t.Fatalf("alice's reveal: %v", err)
	}
	if hash, _ := hashSecretOf(t, k); !verifies(*hash, plain) {
		t.Error("alice's key does not verify")
	}

	// A key alice creates for herself is plain, as the mode says.
	if err := alice.Create(ctx, newKey(ns, "alice-own", unsealed)); err != nil {
		t.Fatal(err)
	}
	own := env.WaitForPhase(t, ns, "alice-own", gatewayv1alpha1.PhaseActive, 10*time.Second)
	if _, err := reveal.Consume(ctx, alice, own, nil); err != nil {
		t.Fatalf("alice's plain reveal of her own key: %v", err)
	}
}
