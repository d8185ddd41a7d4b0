package app

import (
	"testing"
	"time"
)

// TestParseTimeRelative: "now" and signed durations read against the
// clock, so that a copy-pasted command names a range that holds data.
func TestParseTimeRelative(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 30, 15, 5, time.FixedZone("CET", 3600))
	for in, want := range map[string]time.Time{
		"now":    now.UTC(),
		"-1h":    now.UTC().Add(-time.Hour),
		"-24h":   now.UTC().Add(-24 * time.Hour),
		"-1h30m": now.UTC().Add(-90 * time.Minute),
		"+15m":   now.UTC().Add(15 * time.Minute),
		// absolute forms do not depend on the clock
		"2026-11-25": time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseTimeAt(in, now)
		if err != nil || !got.Equal(want) || got.Location() != time.UTC {
			t.Errorf("parseTimeAt(%q) = %v, %v; want %v in UTC", in, got, err, want)
		}
	}
	for _, in := range []string{"1h", "-", "now-1h", "-1d", "Now", "- 1h"} {
		if got, err := parseTimeAt(in, now); err == nil {
			t.Errorf("parseTimeAt(%q) = %v, want an error", in, got)
		}
	}
	// ParseTime reads the clock.
	before := time.Now()
	got, err := ParseTime("-1h")
	if err != nil || got.Before(before.Add(-time.Hour)) || got.After(time.Now().Add(-time.Hour)) {
		t.Errorf(`ParseTime("-1h") = %v, %v; want an hour before now`, got, err)
	}
}
