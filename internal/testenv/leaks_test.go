package testenv

import (
	"testing"

	"github.com/codevector/codevector/keys"
)

func TestKeyLeaks(t *testing.T) {
	k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	full := k.Reveal()
	secret := full[keys.DisplayPrefixLength : keys.DisplayPrefixLength+keys.SecretLength]
	cases := []struct {
		name, text string
		keys       []string
		wantErr    bool
	}{
		{"clean", "issued key " + k.DisplayPrefix() + "...", []string{full}, false},
		{"full key", "Authorization: Bearer " + full, []string{full}, true},
		{"secret part only", "token=" + secret, []string{full}, true},
		{"no keys to look for", "some logs", nil, true},
		{"nothing captured", "", []string{full}, true},
	}
	for _, tc := range cases {
		if err := KeyLeaks("logs", tc.text, tc.keys); (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want error %v", tc.name, err, tc.wantErr)
		}
	}
}
