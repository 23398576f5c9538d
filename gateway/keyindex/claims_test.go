package keyindex

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// The victim's key was issued first; the attacker's APIKey, created later,
// names the same key ID in its status.prefix. Its UID sorts first, so only
// the creation time can make the victim win.
var (
	issuedAt    = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	victimKey   = claimant("team", "victim", "uid-v", "ABCDEFGH", issuedAt)
	attackerKey = claimant("evil", "attacker", "uid-a", "ABCDEFGH", issuedAt.Add(time.Hour))
)

func claimant(ns, name, uid, id string, created time.Time) *gatewayv1alpha1.APIKey {
	k := apiKey(ns, name, uid, id)
	k.CreationTimestamp = metav1.NewTime(created)
	return k
}

// loggedIndex is an empty index whose warnings go to the returned buffer.
func loggedIndex() (*Index, *bytes.Buffer) {
	var logs bytes.Buffer
	ix := New(nil)
	ix.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
	return ix, &logs
}

// assertVictimHolds checks that the victim's key authenticates, and with
// the victim's hash.
func assertVictimHolds(t *testing.T, ix *Index, order string) {
	t.Helper()
	e := ix.Lookup("ABCDEFGH")
	if e == nil || e.UID != "uid-v" || e.HashUID != "secret-v" || e.Usable(time.Now()) != "" {
		t.Errorf("%s: entry %+v, want the victim's, usable with its own hash", order, e)
	}
	if n := ix.Conflicts(); n != 1 {
		t.Errorf("%s: Conflicts() = %d, want 1", order, n)
	}
}

func TestFirstAPIKeyClaimantKeepsItsKeyIDWhateverTheEventOrder(t *testing.T) {
	for order, events := range map[string][]func(*Index){
		"victim, hash, attacker": {setKey(victimKey), setVictimHash, setKey(attackerKey)},
		"attacker, victim, hash": {setKey(attackerKey), setKey(victimKey), setVictimHash},
		"hash, attacker, victim": {setVictimHash, setKey(attackerKey), setKey(victimKey)},
	} {
		ix, logs := loggedIndex()
		for _, apply := range events {
			apply(ix)
		}
		assertVictimHolds(t, ix, order)
		line := logs.String()
		if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "cvk_ABCDEFGH") ||
			!strings.Contains(line, "team/victim") || !strings.Contains(line, "evil/attacker") {
			t.Errorf("%s: want a warning naming the prefix and both APIKeys, got %q", order, line)
		}
		// Both stay in the console's view: the attacker's APIKey is
		// refused, not hidden.
		if len(ix.APIKeys()) != 2 {
			t.Errorf("%s: %d APIKeys known, want 2", order, len(ix.APIKeys()))
		}
	}

	// A verified victim is not made to prove its key again when an
	// attacker shows up, nor when the attacker's APIKey changes.
	ix, _ := loggedIndex()
	setKey(victimKey)(ix)
	setVictimHash(ix)
	before := ix.Lookup("ABCDEFGH").Version
	setKey(attackerKey)(ix)
	used := attackerKey.DeepCopy()
	used.Status.LastUsedAt = &metav1.Time{Time: issuedAt.Add(2 * time.Hour)}
	setKey(used)(ix)
	if after := ix.Lookup("ABCDEFGH").Version; after != before {
		t.Errorf("the attacker's APIKey changed the victim's entry version (%d -> %d)", before, after)
	}
}

func TestHashSecretForAnotherAPIKeyNeverCounts(t *testing.T) {
	// A second hash Secret labelled with the victim's key ID, written for
	// another APIKey (the attacker's, whose hash the attacker knows).
	attackerHash := HashFacts{SecretUID: "secret-a", KeyID: "ABCDEFGH", APIKeyUID: "uid-a"}
	for order, events := range map[string][]func(*Index){
		"victim's hash first":   {setKey(victimKey), setVictimHash, func(ix *Index) { ix.SetHash(attackerHash) }},
		"attacker's hash first": {setKey(victimKey), func(ix *Index) { ix.SetHash(attackerHash) }, setVictimHash},
		"hashes before the key": {func(ix *Index) { ix.SetHash(attackerHash) }, setVictimHash, setKey(victimKey)},
	} {
		ix, logs := loggedIndex()
		for _, apply := range events {
			apply(ix)
		}
		assertVictimHolds(t, ix, order)
		if line := logs.String(); !strings.Contains(line, "level=WARN") || !strings.Contains(line, "cvk_ABCDEFGH") || !strings.Contains(line, "secret-a") {
			t.Errorf("%s: want a warning naming the prefix and the refused hash Secret, got %q", order, line)
		}

		// Without the victim's own hash, the other one still does not
		// count: the key is unknown, not the attacker's.
		ix.DeleteHash("secret-v")
		if e := ix.Lookup("ABCDEFGH"); e == nil || e.UID != "uid-v" || e.Hash != nil || e.Usable(time.Now()) != ReasonUnknown {
			t.Errorf("%s: victim's hash deleted: entry %+v, want the victim's APIKey with no hash", order, e)
		}
		if n := ix.Conflicts(); n != 0 {
			t.Errorf("%s: one claimant of each kind left, Conflicts() = %d, want 0", order, n)
		}
	}
}

func TestNextClaimantTakesOverWhenTheFirstGoes(t *testing.T) {
	ix, logs := loggedIndex()
	setKey(victimKey)(ix)
	setVictimHash(ix)
	setKey(attackerKey)(ix)
	ix.SetHash(HashFacts{SecretUID: "secret-a", KeyID: "ABCDEFGH", APIKeyUID: "uid-a"})
	logs.Reset()

	ix.DeleteAPIKey(types.NamespacedName{Namespace: "team", Name: "victim"})
	e := ix.Lookup("ABCDEFGH")
	if e == nil || e.UID != "uid-a" || e.HashUID != "secret-a" {
		t.Fatalf("after the first claimant went: entry %+v, want the attacker's APIKey with its own hash", e)
	}
	if line := logs.String(); !strings.Contains(line, "evil/attacker") || !strings.Contains(line, "team/victim") {
		t.Errorf("the handover is not logged with both APIKeys: %q", line)
	}
	// The victim's hash Secret, not yet deleted by the controller, is still
	// a second claimant.
	if n := ix.Conflicts(); n != 1 {
		t.Errorf("Conflicts() = %d, want 1 (two hash Secrets)", n)
	}
	ix.DeleteHash("secret-v")
	if n := ix.Conflicts(); n != 0 {
		t.Errorf("one claimant of each kind left: Conflicts() = %d, want 0", n)
	}
	if e := ix.Lookup("ABCDEFGH"); e == nil || e.UID != "uid-a" || e.HashUID != "secret-a" {
		t.Errorf("the victim's hash going changed the new holder's entry: %+v", e)
	}
}

// A relist applies objects in list order, then sweeps what is gone; the
// first claimant wins there too, a relist of an unchanged conflict does
// not report it again, and one that lacks the first claimant hands the
// key ID on.
func TestRelistKeepsTheFirstClaimant(t *testing.T) {
	ix, logs := loggedIndex()
	keys := &apiKeyStore{store: store{ix: ix}}
	hashes := &hashStore{store{ix: ix}}
	victimHash, attackerHash := hashSecret("secret-v", "ABCDEFGH", "uid-v"), hashSecret("secret-a", "ABCDEFGH", "uid-a")
	if err := hashes.Replace([]any{attackerHash, victimHash}, "1"); err != nil {
		t.Fatal(err)
	}
	if err := keys.Replace([]any{attackerKey, victimKey}, "1"); err != nil {
		t.Fatal(err)
	}
	assertVictimHolds(t, ix, "first list")
	if !strings.Contains(logs.String(), "evil/attacker") {
		t.Errorf("the conflict in the first list is not logged: %q", logs.String())
	}

	logs.Reset()
	before := ix.Lookup("ABCDEFGH").Version
	if err := keys.Replace([]any{victimKey, attackerKey}, "2"); err != nil {
		t.Fatal(err)
	}
	if err := hashes.Replace([]any{victimHash, attackerHash}, "2"); err != nil {
		t.Fatal(err)
	}
	assertVictimHolds(t, ix, "same list again")
	if ix.Lookup("ABCDEFGH").Version != before {
		t.Error("a relist of the same objects changed the entry's version")
	}
	if logs.Len() != 0 {
		t.Errorf("a relist of an unchanged conflict logged again: %q", logs.String())
	}

	if err := keys.Replace([]any{attackerKey}, "3"); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ABCDEFGH"); e == nil || e.UID != "uid-a" || e.HashUID != "secret-a" {
		t.Errorf("a relist without the first claimant: entry %+v, want the attacker's", e)
	}
	if err := hashes.Replace([]any{attackerHash}, "3"); err != nil {
		t.Fatal(err)
	}
	if n := ix.Conflicts(); n != 0 {
		t.Errorf("Conflicts() = %d after the relists left one claimant of each kind", n)
	}
}

func setKey(k *gatewayv1alpha1.APIKey) func(*Index) {
	return func(ix *Index) { ix.SetAPIKey(APIKeyFactsOf(k)) }
}

func setVictimHash(ix *Index) {
	ix.SetHash(HashFacts{SecretUID: "secret-v", KeyID: "ABCDEFGH", APIKeyUID: "uid-v"})
}

// The controller replaces a hash Secret by deleting it, then writing a new
// one. A relist that finds only the new one is no conflict, not even for a
// moment: what the list lacks goes before what it has is applied.
func TestRelistOfAReplacedHashSecretIsNoConflict(t *testing.T) {
	ix, logs := loggedIndex()
	hashes := &hashStore{store{ix: ix}}
	setKey(victimKey)(ix)
	setVictimHash(ix)
	if err := hashes.Replace([]any{hashSecret("secret-v2", "ABCDEFGH", "uid-v")}, "2"); err != nil {
		t.Fatal(err)
	}
	if e := ix.Lookup("ABCDEFGH"); e == nil || e.HashUID != "secret-v2" {
		t.Errorf("entry %+v, want the new hash Secret's", e)
	}
	if logs.Len() != 0 || ix.Conflicts() != 0 {
		t.Errorf("a replaced hash Secret was reported as a conflict: %q", logs.String())
	}
}
