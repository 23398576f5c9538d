package v1alpha1

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var daysOrWeeks = regexp.MustCompile(`^([0-9]{1,9})([dw])$`)

// MaxLifetimeDays bounds a lifetime in days or weeks: the CRD takes up
// to 4 digits (9999w, 191 years, within time.Duration), so every ttl the
// API server stores decodes.
const MaxLifetimeDays = 9999 * 7

// ParseLifetime reads a lifetime: "30d" and "2w" (days of 24 hours), or
// whatever time.ParseDuration reads ("12h", "90m", "1h30m").
func ParseLifetime(s string) (time.Duration, error) {
	if m := daysOrWeeks.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err == nil && m[2] == "w" {
			n *= 7
		}
		if err != nil || n > MaxLifetimeDays {
			return 0, fmt.Errorf("%q: at most 9999 days or weeks", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a lifetime: write it like 30d, 2w, 12h or 90m", s)
	}
	return d, nil
}

// Lifetime is spec.ttl: a duration written as ParseLifetime reads it. It
// keeps the text it was read from and writes it back unchanged, so that
// an update of an APIKey read from the API server sends the ttl it
// read ("30d", not "720h0m0s"), which the immutability rule of spec.ttl
// compares as text.
// +kubebuilder:validation:Type=string
type Lifetime struct {
	time.Duration `json:"-"`
	text          string
}

// NewLifetime is the Lifetime that ParseLifetime reads from text, which
// must be valid (a literal, a flag value already checked).
func NewLifetime(text string) (*Lifetime, error) {
	d, err := ParseLifetime(text)
	if err != nil {
		return nil, err
	}
	return &Lifetime{Duration: d, text: text}, nil
}

// String is the lifetime as written, else as time.Duration writes it.
func (l Lifetime) String() string {
	if l.text != "" {
		return l.text
	}
	return l.Duration.String()
}

// MarshalJSON writes the lifetime as a string.
func (l Lifetime) MarshalJSON() ([]byte, error) { return json.Marshal(l.String()) }

// UnmarshalJSON reads a lifetime string.
func (l *Lifetime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("ttl: want a string such as \"30d\" or \"12h\": %w", err)
	}
	d, err := ParseLifetime(s)
	if err != nil {
		return err
	}
	*l = Lifetime{Duration: d, text: s}
	return nil
}

// ToUnstructured makes the lifetime a string in unstructured content.
func (l Lifetime) ToUnstructured() any { return l.String() }

// OpenAPISchemaType and OpenAPISchemaFormat describe it as a string.
func (Lifetime) OpenAPISchemaType() []string { return []string{"string"} }

// OpenAPISchemaFormat is empty: any string the CRD's rule accepts.
func (Lifetime) OpenAPISchemaFormat() string { return "" }

// expiryDate and expiryTime are the shapes of spec.expiresAt the CRD's
// rule admits (apikey_types.go): a date, or an RFC 3339 time with seconds
// and a zone, which is what time.RFC3339 parses. The rule also checks the
// numbers (no month 13) with the API server's own date parsers.
const (
	expiryDatePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}$`
	expiryTimePattern = `^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}([.][0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})$`
)

// expiryHint says what an expiry time looks like.
const expiryHint = "write a date such as 2027-01-31 (the start of that day, UTC) or an RFC 3339 time such as 2027-01-31T09:00:00Z"

var (
	expiryDate = regexp.MustCompile(expiryDatePattern)
	expiryTime = regexp.MustCompile(expiryTimePattern)
)

// ParseExpiry reads an expiry time: a date ("2027-01-31"), which means the
// start of that day in UTC (midnight), or an RFC 3339 time
// ("2027-01-31T09:00:00Z", "2027-01-31T09:00:00+02:00"). kubectl apikey
// create --expires and spec.expiresAt read the same grammar. The Expiry
// keeps s as written.
func ParseExpiry(s string) (*Expiry, error) {
	var layout string
	switch {
	case expiryDate.MatchString(s):
		layout = time.DateOnly
	case expiryTime.MatchString(s):
		layout = time.RFC3339
	default:
		return nil, fmt.Errorf("%q is not an expiry time: %s", s, expiryHint)
	}
	t, err := time.Parse(layout, s)
	if err != nil {
		return nil, fmt.Errorf("%q is not an expiry time (%v): %s", s, err, expiryHint)
	}
	return &Expiry{Time: t, text: s}, nil
}

// Expiry is spec.expiresAt: a time written as ParseExpiry reads it. Like
// Lifetime it keeps the text it was read from and writes it back
// unchanged, so an update of an APIKey read from the API server sends the
// expiresAt it read ("2027-01-31", not "2027-01-31T00:00:00Z"), which the
// immutability rule of spec.expiresAt compares as text.
// +kubebuilder:validation:Type=string
// +kubebuilder:object:generate=false
type Expiry struct {
	// Time is the instant the key stops working.
	Time time.Time `json:"-"`
	text string
}

// NewExpiry is the Expiry at t, written as RFC 3339 in UTC to the second
// (as metav1.Time writes a time).
func NewExpiry(t time.Time) *Expiry {
	t = t.UTC().Truncate(time.Second)
	return &Expiry{Time: t, text: t.Format(time.RFC3339)}
}

// DeepCopyInto copies the expiry; written here because controller-gen
// would deep-copy the time.Time, which is a value.
func (e *Expiry) DeepCopyInto(out *Expiry) { *out = *e }

// DeepCopy copies the expiry.
func (e *Expiry) DeepCopy() *Expiry {
	if e == nil {
		return nil
	}
	out := *e
	return &out
}

// String is the expiry as written.
func (e Expiry) String() string {
	if e.text != "" {
		return e.text
	}
	return e.Time.UTC().Format(time.RFC3339)
}

// MarshalJSON writes the expiry as a string; a zero one as null, as
// metav1.Time does.
func (e Expiry) MarshalJSON() ([]byte, error) {
	if e.text == "" && e.Time.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(e.String())
}

// UnmarshalJSON reads an expiry string (null: the zero Expiry).
func (e *Expiry) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*e = Expiry{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("expiresAt: want a string such as \"2027-01-31\" or \"2027-01-31T09:00:00Z\": %w", err)
	}
	parsed, err := ParseExpiry(s)
	if err != nil {
		return err
	}
	*e = *parsed
	return nil
}

// ToUnstructured makes the expiry a string in unstructured content.
func (e Expiry) ToUnstructured() any {
	if e.text == "" && e.Time.IsZero() {
		return nil
	}
	return e.String()
}

// OpenAPISchemaType describes it as a string.
func (Expiry) OpenAPISchemaType() []string { return []string{"string"} }

// OpenAPISchemaFormat is empty: a date is not a date-time, and the CRD's
// rule says what is accepted.
func (Expiry) OpenAPISchemaFormat() string { return "" }
