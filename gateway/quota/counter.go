package quota

import (
	"fmt"
	"time"
)

// Period is a calendar period in UTC. A Counter uses either a Period or a
// Window.
type Period string

const (
	// Minute is the calendar minute (hh:mm:00 to hh:mm:59.999 UTC).
	Minute Period = "minute"
	// Day starts at 00:00 UTC.
	Day Period = "day"
	// Week starts on Monday 00:00 UTC (ISO 8601).
	Week Period = "week"
	// Month starts on the first of the month, 00:00 UTC.
	Month Period = "month"
	// Total never resets.
	Total Period = "total"
)

// totalStart and totalEnd bound the Total period. gubernator needs a finite
// expiry; a century is as good as forever and still fits its millisecond
// arithmetic many times over.
var (
	totalStart = time.Date(2000, time.January, 1, 0, 0, 0, 0, time.UTC)
	totalEnd   = time.Date(2100, time.January, 1, 0, 0, 0, 0, time.UTC)
)

// Counter names one limit of one key and says how it resets.
type Counter struct {
	// Key identifies the counter across replicas, for example
	// "team-a/ci-key/tpm". It is also what Checkpoint is asked about.
	Key string
	// Limit is the most the counter admits per window or period.
	Limit int64
	// Window is a fixed window aligned to the Unix epoch (a one-minute
	// Window resets at every full minute). Used when Period is empty.
	Window time.Duration
	// Period is a calendar period in UTC; it takes precedence over Window.
	Period Period
	// At picks the window or period to charge; zero means now. Settlements
	// set it to the Decision.PeriodStart of the reservation so that they land
	// in the period the reservation was taken from, even after a reset.
	At time.Time
}

// Decision is the state of a counter after a Take or Settle.
type Decision struct {
	// Allowed is false when the hits did not fit; nothing was counted then.
	Allowed bool
	// Limit is the counter's limit.
	Limit int64
	// Remaining is what is left in the current period; negative after an
	// overdraw.
	Remaining int64
	// PeriodStart is the start of the window or period that was charged.
	PeriodStart time.Time
	// ResetAt is when the period ends and the counter starts from zero.
	ResetAt time.Time
}

// Span returns the window or period of c that contains now (or c.At), as
// [start, end): where a Take at now counts.
// It is pure so the calendar arithmetic can be tested without gubernator.
func (c Counter) Span(now time.Time) (start, end time.Time, err error) {
	if !c.At.IsZero() {
		now = c.At
	}
	now = now.UTC()
	switch c.Period {
	case "":
		if c.Window <= 0 {
			return time.Time{}, time.Time{}, fmt.Errorf("counter %q has neither a period nor a positive window", c.Key)
		}
		if c.Window%time.Millisecond != 0 {
			return time.Time{}, time.Time{}, fmt.Errorf("counter %q: window %s is not a whole number of milliseconds", c.Key, c.Window)
		}
		// Truncate works on absolute time since the zero Time, which is not
		// aligned with the epoch for every window; align explicitly.
		ms := now.UnixMilli()
		w := c.Window.Milliseconds()
		s := ms - ms%w
		return time.UnixMilli(s).UTC(), time.UnixMilli(s + w).UTC(), nil
	case Minute:
		start = now.Truncate(time.Minute)
		return start, start.Add(time.Minute), nil
	case Day:
		y, m, d := now.Date()
		start = time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 1), nil
	case Week:
		y, m, d := now.Date()
		sinceMonday := (int(now.Weekday()) + 6) % 7
		start = time.Date(y, m, d-sinceMonday, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 0, 7), nil
	case Month:
		y, m, _ := now.Date()
		start = time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)
		return start, start.AddDate(0, 1, 0), nil
	case Total:
		return totalStart, totalEnd, nil
	}
	return time.Time{}, time.Time{}, fmt.Errorf("counter %q has unknown period %q", c.Key, c.Period)
}
