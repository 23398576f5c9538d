package keys

import "testing"

func TestQuickCheckPassesTheKeyAndAlmostNoOther(t *testing.T) {
	k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	salt := []byte("0123456789abcdef")
	want := QuickCheck(k, salt)
	if got, err := ParseQuickCheck(FormatQuickCheck(want)); err != nil || got != want {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if QuickCheck(k, []byte("another salt....")) == want && QuickCheck(k, []byte("yet another salt")) == want {
		t.Error("the tag does not depend on the salt")
	}
	// Wrong secrets for the same key ID pass about once in 65,536.
	const tries = 200_000
	passed := 0
	for range tries {
		wrong, _ := Generate()
		wrong, _ = WithID(wrong, k.ID())
		if QuickCheck(wrong, salt) == want {
			passed++
		}
	}
	if passed > 20 {
		t.Errorf("%d of %d wrong secrets passed the quick check, want about 3", passed, tries)
	}
	for _, bad := range []string{"", "abc", "abcde", "xyz1", "-001"} {
		if _, err := ParseQuickCheck(bad); err == nil {
			t.Errorf("ParseQuickCheck(%q) accepted it", bad)
		}
	}
}
