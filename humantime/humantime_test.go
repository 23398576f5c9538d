package humantime

import (
	"testing"
	"time"
)

func TestAgo(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		ago  time.Duration
		want string
	}{
		{-5 * time.Second, "just now"},
		{0, "just now"},
		{10 * time.Second, "just now"},
		{time.Minute, "1 minute ago"},
		{3*time.Minute + 20*time.Second, "3 minutes ago"},
		{time.Hour, "1 hour ago"},
		{23 * time.Hour, "23 hours ago"},
		{24 * time.Hour, "1 day ago"},
		{49 * time.Hour, "2 days ago"},
		{29 * 24 * time.Hour, "29 days ago"},
		{30 * 24 * time.Hour, "1 month ago"},
		{45 * 24 * time.Hour, "1 month ago"},
		{364 * 24 * time.Hour, "12 months ago"},
		{400 * 24 * time.Hour, "1 year ago"},
		{800 * 24 * time.Hour, "2 years ago"},
	} {
		if got := Ago(now, now.Add(-tc.ago)); got != tc.want {
			t.Errorf("%v ago: %q, want %q", tc.ago, got, tc.want)
		}
	}
}

// TestUntil covers every phrase of Until at its edges: none is empty, none
// says "in 0 ..." or "in just now", and none drops a unit's worth of time
// by truncating (59.9 seconds is "in 1 minute", not "in 0 minutes").
func TestUntil(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	const day = 24 * time.Hour
	for _, tc := range []struct {
		in   time.Duration
		want string
	}{
		{0, "in less than a minute"},
		{time.Second, "in less than a minute"},
		{29 * time.Second, "in less than a minute"},
		{30 * time.Second, "in 1 minute"},
		{59*time.Second + 900*time.Millisecond, "in 1 minute"},
		{time.Minute, "in 1 minute"},
		{89 * time.Second, "in 1 minute"},
		{90 * time.Second, "in 2 minutes"},
		{59 * time.Minute, "in 59 minutes"},
		{59*time.Minute + 40*time.Second, "in 1 hour"},
		{time.Hour, "in 1 hour"},
		{5*time.Hour + 10*time.Minute, "in 5 hours"},
		{23*time.Hour + 59*time.Minute, "in 1 day"},
		{day, "in 1 day"},
		{36 * day / 10, "in 4 days"},
		{29 * day, "in 29 days"},
		{29*day + 23*time.Hour, "in 1 month"},
		{45 * day, "in 2 months"},
		{330 * day, "in 11 months"},
		{350 * day, "in 1 year"},
		{364 * day, "in 1 year"},
		{365 * day, "in 1 year"},
		{800 * day, "in 2 years"},
		{-3 * time.Minute, "3 minutes ago"},
		{-time.Second, "just now"},
	} {
		if got := Until(now, now.Add(tc.in)); got != tc.want {
			t.Errorf("Until(now + %v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestRelative(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		at   time.Duration
		want string
	}{
		{-2 * time.Hour, "2 hours ago"},
		{0, "just now"},
		{time.Minute, "in 1 minute"},
		{10 * time.Second, "in less than a minute"},
	} {
		if got := Relative(now, now.Add(tc.at)); got != tc.want {
			t.Errorf("Relative(now %+v) = %q, want %q", tc.at, got, tc.want)
		}
	}
}
