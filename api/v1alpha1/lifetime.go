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
