package v1alpha1

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// spec.expiresAt reads what kubectl apikey create --expires reads, and
// writes back what it read, so an update of a key as read keeps it.
func TestExpiryReadsDatesAndTimesAndWritesThemBack(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"2027-01-31", time.Date(2027, 1, 31, 0, 0, 0, 0, time.UTC)},
		{"2027-01-31T09:00:00Z", time.Date(2027, 1, 31, 9, 0, 0, 0, time.UTC)},
		{"2027-01-31T09:00:00+02:00", time.Date(2027, 1, 31, 7, 0, 0, 0, time.UTC)},
		{"2027-01-31T09:00:00.5Z", time.Date(2027, 1, 31, 9, 0, 0, 5e8, time.UTC)},
	} {
		var e Expiry
		if err := json.Unmarshal([]byte(`"`+tc.in+`"`), &e); err != nil || !e.Time.Equal(tc.want) {
			t.Errorf("%s: %v, %v; want %v", tc.in, e.Time, err, tc.want)
			continue
		}
		if out, err := json.Marshal(e); err != nil || string(out) != `"`+tc.in+`"` {
			t.Errorf("%s writes back as %s (%v)", tc.in, out, err)
		}
	}
	for _, bad := range []string{`"2027-02-30"`, `"2027-01-31T09:00"`, `"31/01/2027"`, `"30d"`, `5`} {
		var e Expiry
		if err := json.Unmarshal([]byte(bad), &e); err == nil || !strings.Contains(err.Error(), "2027-01-31") {
			t.Errorf("%s: %v, want an error with an example", bad, err)
		}
	}
	var absent struct {
		E *Expiry `json:"e,omitempty"`
	}
	if out, _ := json.Marshal(absent); string(out) != `{}` {
		t.Errorf("no expiry writes %s", out)
	}
	if got := NewExpiry(time.Date(2027, 1, 31, 9, 0, 0, 123, time.FixedZone("x", 3600))).String(); got != "2027-01-31T08:00:00Z" {
		t.Errorf("NewExpiry writes %s, want RFC 3339 in UTC to the second", got)
	}
}

// The CRD's rule for spec.expiresAt (a marker, which cannot name a Go
// constant) admits the shapes ParseExpiry reads, and no others.
func TestExpiryRuleOfTheCRDIsParseExpirys(t *testing.T) {
	crd, err := os.ReadFile("../../config/crd/bases/gateway.codevector.io_apikeys.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, pattern := range []string{expiryDatePattern, expiryTimePattern} {
		if !strings.Contains(string(crd), "''"+pattern+"''") {
			t.Errorf("the CRD's rule for spec.expiresAt does not use %s", pattern)
		}
	}
}
