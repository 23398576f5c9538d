package commands

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The flag values below check what they are given when cobra parses the
// command line, so a bad value is refused with its flag's name and the
// command body only assembles what is already valid. pflag has string,
// int and duration values but none that parse into a named type, refuse a
// negative, hold a secret's file, or map a user's "0 means off" onto the options'
// own "negative means off" (zero there means the default, which is what
// a Go struct left empty should get); these small types do, each in
// one place.

// textValue is a string flag parsed into T when set: a mode into its
// named type, a comma-separated list into a slice, CIDRs into prefixes.
type textValue[T any] struct {
	dst   *T
	text  string
	parse func(string) (T, error)
}

// parsed registers dst with its default's text, parsed like any other.
func parsed[T any](dst *T, def string, parse func(string) (T, error)) *textValue[T] {
	v := &textValue[T]{dst: dst, parse: parse}
	if err := v.Set(def); err != nil {
		panic(fmt.Sprintf("flag default %q: %v", def, err)) // a programming error
	}
	return v
}

// oneOf is a mode flag (--reveal-mode, --budget-failure-mode): one of
// values, anything else refused with the list of them.
func oneOf[T ~string](dst *T, def T, values ...T) *textValue[T] {
	return parsed(dst, string(def), func(s string) (T, error) {
		if i := slices.Index(values, T(s)); i >= 0 {
			return values[i], nil
		}
		names := make([]string, len(values))
		for i, v := range values {
			names[i] = string(v)
		}
		return "", fmt.Errorf("want %s or %s", strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
	})
}

// list is a comma-separated list, as --namespaces and --peers take;
// blanks between commas are dropped.
func list(dst *[]string, def string) *textValue[[]string] {
	return parsed(dst, def, func(s string) ([]string, error) { return splitList(s), nil })
}

func (v *textValue[T]) String() string { return v.text }
func (v *textValue[T]) Type() string   { return "string" }
func (v *textValue[T]) Set(s string) error {
	t, err := v.parse(s)
	if err != nil {
		return err
	}
	v.text, *v.dst = s, t
	return nil
}

// offAtZero is a count or a duration where the user writes 0 for "off"
// (no cap, no limit, no tarpit) and the options spell off as negative.
type offAtZero[T int | time.Duration] struct {
	dst *T
}

func zeroMeansOff[T int | time.Duration](dst *T, def T) *offAtZero[T] {
	*dst = def
	return &offAtZero[T]{dst: dst}
}

func (v *offAtZero[T]) String() string {
	if *v.dst < 0 {
		return "0"
	}
	return formatNumber(*v.dst)
}

func (v *offAtZero[T]) Type() string {
	if _, ok := any(*v.dst).(time.Duration); ok {
		return "duration"
	}
	return "int"
}

func (v *offAtZero[T]) Set(s string) error {
	n, err := parseNumber[T](s)
	switch {
	case err != nil:
		return err
	case n < 0:
		return fmt.Errorf("%s is negative: want 0 (off) or more", s)
	case n == 0:
		*v.dst = -1
	default:
		*v.dst = n
	}
	return nil
}

// positive is a duration that must be above zero (timeouts, intervals).
type positive struct{ dst *time.Duration }

func positiveDuration(dst *time.Duration, def time.Duration) *positive {
	*dst = def
	return &positive{dst: dst}
}

func (v *positive) String() string { return v.dst.String() }
func (v *positive) Type() string   { return "duration" }
func (v *positive) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	if d <= 0 {
		return fmt.Errorf("%v: want a positive duration", d)
	}
	*v.dst = d
	return nil
}

// secretFile is a file holding a secret (a mounted Secret). The flag
// keeps the path, which is all help and errors ever show; read loads the
// secret, trimmed, once the command runs.
type secretFile struct {
	path     string
	minBytes int
	load     func(secret string)
}

func (v *secretFile) String() string        { return v.path }
func (v *secretFile) Type() string          { return "string" }
func (v *secretFile) Set(path string) error { v.path = path; return nil }

// read loads the secret when the flag was given.
func (v *secretFile) read() error {
	if v.path == "" {
		return nil
	}
	data, err := os.ReadFile(v.path)
	if err != nil {
		return err
	}
	secret := strings.TrimSpace(string(data))
	switch {
	case secret == "":
		return fmt.Errorf("%s is empty", v.path)
	case len(secret) < v.minBytes:
		return fmt.Errorf("%s: the secret must be at least %d bytes", v.path, v.minBytes)
	}
	v.load(secret)
	return nil
}

func formatNumber[T int | time.Duration](n T) string {
	if d, ok := any(n).(time.Duration); ok {
		return d.String()
	}
	return strconv.Itoa(int(n))
}

func parseNumber[T int | time.Duration](s string) (T, error) {
	var zero T
	if _, ok := any(zero).(time.Duration); ok {
		d, err := time.ParseDuration(s)
		return T(d), err
	}
	n, err := strconv.Atoi(s)
	return T(n), err
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
