package auth

import (
	"net/http"
	"strings"
	"testing"
)

func TestExtractKey(t *testing.T) {
	const key = "cvk_ABCDEFGH0123456789abcdefghijklmnopqrstuv000000"
	cases := []struct {
		name    string
		headers map[string][]string
		want    string
		wantErr error
	}{
		{"bearer", map[string][]string{"Authorization": {"Bearer " + key}}, key, nil},
		{"bearer lower-case scheme", map[string][]string{"Authorization": {"bearer " + key}}, key, nil},
		{"bearer with spaces", map[string][]string{"Authorization": {"  Bearer   " + key + "  "}}, key, nil},
		{"x-api-key", map[string][]string{"X-Api-Key": {key}}, key, nil},
		{"both, same key", map[string][]string{"Authorization": {"Bearer " + key}, "X-Api-Key": {key}}, key, nil},
		{"nothing", map[string][]string{}, "", errNoKey},
		{"basic scheme", map[string][]string{"Authorization": {"Basic dXNlcjpwYXNz"}}, "", errBadHeader},
		{"bearer without token", map[string][]string{"Authorization": {"Bearer"}}, "", errBadHeader},
		{"bearer with blank token", map[string][]string{"Authorization": {"Bearer    "}}, "", errBadHeader},
		{"empty x-api-key", map[string][]string{"X-Api-Key": {""}}, "", errBadHeader},
		{"repeated authorization", map[string][]string{"Authorization": {"Bearer " + key, "Bearer " + key}}, "", errBadHeader},
		{"repeated x-api-key", map[string][]string{"X-Api-Key": {key, key}}, "", errBadHeader},
		{"both, different keys", map[string][]string{"Authorization": {"Bearer " + key}, "X-Api-Key": {"other"}}, "", errBadHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExtractKey(http.Header(tc.headers))
			if got != tc.want || err != tc.wantErr {
				t.Errorf("ExtractKey = %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// FuzzExtractKey: extraction never panics, and whatever it returns is a
// trimmed, non-empty token that came from one of the two headers.
func FuzzExtractKey(f *testing.F) {
	f.Add("Bearer cvk_ABCDEFGH0123456789abcdefghijklmnopqrstuv000000", "")
	f.Add("", "cvk_ABCDEFGH0123456789abcdefghijklmnopqrstuv000000")
	f.Add("bearer x", "x")
	f.Add("Basic abc", "")
	f.Add("Bearer \t\x00", "\xff")
	f.Add("Bearer", " ")
	f.Fuzz(func(t *testing.T, authorization, apiKey string) {
		h := http.Header{}
		if authorization != "" {
			h.Set("Authorization", authorization)
		}
		if apiKey != "" {
			h.Set("X-Api-Key", apiKey)
		}
		got, err := ExtractKey(h)
		if err != nil {
			if got != "" {
				t.Fatalf("returned %q with error %v", got, err)
			}
			return
		}
		if got == "" || got != strings.TrimSpace(got) {
			t.Fatalf("returned untrimmed or empty token %q", got)
		}
		if !strings.Contains(authorization, got) && !strings.Contains(apiKey, got) {
			t.Fatalf("returned %q, found in neither header", got)
		}
	})
}
