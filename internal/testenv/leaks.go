package testenv

import (
	"fmt"
	"strings"

	"github.com/codevector/codevector/keys"
)

// KeyLeaks returns an error naming (by prefix only) every key in plaintext
// whose full text, or just its secret part, appears in text. With no keys
// or no text it fails too: such a check would prove nothing.
func KeyLeaks(where, text string, plaintext []string) error {
	if len(plaintext) == 0 || text == "" {
		return fmt.Errorf("leak check of %s: no keys or no text captured; the check would prove nothing", where)
	}
	var leaked []string
	for _, k := range plaintext {
		secret := k
		if len(k) == keys.Length {
			secret = k[keys.DisplayPrefixLength : keys.DisplayPrefixLength+keys.SecretLength]
		}
		if strings.Contains(text, k) || strings.Contains(text, secret) {
			leaked = append(leaked, k[:min(len(k), keys.DisplayPrefixLength)])
		}
	}
	if len(leaked) > 0 {
		return fmt.Errorf("the %s contain the keys with prefixes %s", where, strings.Join(leaked, ", "))
	}
	return nil
}
