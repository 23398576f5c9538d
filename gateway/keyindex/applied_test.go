package keyindex

import (
	"maps"
	"testing"

	gatewayv1alpha1 "github.com/codevector/codevector/api/v1alpha1"
)

// The index says, per watch, up to which resource version it holds every
// change, only after the change is in (the key is refused), and signals
// the changes that refuse a key so that they are published at once.
func TestAppliedVersionsPerWatch(t *testing.T) {
	ix := New(nil)
	team := &apiKeyStore{store: store{ix: ix}, namespace: "team"}
	other := &apiKeyStore{store: store{ix: ix}, namespace: "other"}
	drain := func() bool {
		select {
		case <-ix.Refusals():
			return true
		default:
			return false
		}
	}
	if err := team.Replace(nil, "100"); err != nil {
		t.Fatal(err)
	}
	if err := other.Replace(nil, "100"); err != nil {
		t.Fatal(err)
	}
	drain()

	laptop := apiKey("team", "laptop", "uid-1", "ABCDEFGH")
	laptop.ResourceVersion = "110"
	if err := team.Add(laptop); err != nil {
		t.Fatal(err)
	}
	if drain() {
		t.Error("a new key signalled a refusal")
	}
	revoked := laptop.DeepCopy()
	revoked.ResourceVersion, revoked.Spec.Revoked = "120", true
	if err := team.Update(revoked); err != nil {
		t.Fatal(err)
	}
	if !drain() {
		t.Error("a revocation did not signal")
	}
	if r := ix.Lookup("ABCDEFGH").Usable(revoked.CreationTimestamp.Time); r != ReasonRevoked {
		t.Errorf("after the revocation was applied the key is %q, want revoked", r)
	}
	if got, want := ix.AppliedVersions(), map[string]uint64{"team": 120, "other": 100}; !maps.Equal(got, want) {
		t.Errorf("applied versions %v, want %v: namespace other's watch has not delivered 120", got, want)
	}
	// A deletion in the other namespace moves that watch only; versions
	// never go back.
	ci := apiKey("other", "ci", "uid-2", "ZZZZZZZZ")
	ci.ResourceVersion = "130"
	if err := other.Delete(ci); err != nil {
		t.Fatal(err)
	}
	if !drain() {
		t.Error("a deletion did not signal")
	}
	old := &gatewayv1alpha1.APIKey{}
	old.Namespace, old.Name, old.ResourceVersion = "team", "x", "90"
	if err := team.Update(old); err != nil {
		t.Fatal(err)
	}
	if got, want := ix.AppliedVersions(), map[string]uint64{"team": 120, "other": 130}; !maps.Equal(got, want) {
		t.Errorf("applied versions %v, want %v", got, want)
	}
}
