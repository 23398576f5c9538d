// Package humantime says how long ago something happened, or how soon it
// will, in the words the console and the CLI both use.
package humantime

import (
	"fmt"
	"time"
)

// Ago says how long before now t was: "just now", "3 minutes ago",
// "2 days ago", "1 month ago", "2 years ago". A time slightly in the future
// (clock skew between gateway replicas) is "just now".
func Ago(now, t time.Time) string {
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return fmt.Sprintf("1 %s ago", unit)
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d < 30*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	case d < 365*24*time.Hour:
		return plural(int(d/(30*24*time.Hour)), "month")
	default:
		return plural(int(d/(365*24*time.Hour)), "year")
	}
}

// Until says how long after now t is: "in less than a minute", "in 1
// minute", "in 5 hours", "in 3 days", "in 2 months", "in 1 year". Unlike
// Ago it rounds to the nearest unit, so a key that expires in 59.9 seconds
// expires "in 1 minute" (not "in 0 minutes"), and one in 23 hours 59
// minutes "in 1 day" (not "in 23 hours"). A time already past is said
// with Ago.
func Until(now, t time.Time) string {
	d := t.Sub(now)
	if d < 0 {
		return Ago(now, t)
	}
	if d < 30*time.Second {
		return "in less than a minute"
	}
	in := func(unit time.Duration) int { return int((d + unit/2) / unit) }
	phrase := func(n int, unit string) string {
		if n == 1 {
			return "in 1 " + unit
		}
		return fmt.Sprintf("in %d %ss", n, unit)
	}
	const day = 24 * time.Hour
	switch {
	case in(time.Minute) < 60:
		return phrase(in(time.Minute), "minute")
	case in(time.Hour) < 24:
		return phrase(in(time.Hour), "hour")
	case in(day) < 30:
		return phrase(in(day), "day")
	case in(30*day) < 12 && d < 365*day:
		return phrase(in(30*day), "month")
	default:
		return phrase(max(1, in(365*day)), "year")
	}
}

// Relative is Until for a time after now and Ago otherwise.
func Relative(now, t time.Time) string {
	if t.After(now) {
		return Until(now, t)
	}
	return Ago(now, t)
}
