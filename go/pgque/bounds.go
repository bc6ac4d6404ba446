package pgque

import (
	"math"
	"strings"
	"time"
	"unicode/utf8"
)

// Checks of counts, durations, times and text made before calling SQL.  pgx
// refuses a Go int beyond an SQL int with an error of its own (no
// sentinel), and would carry a time.Time past PostgreSQL's range into a
// wrapped timestamp; the engine's own checks (PQ006) cannot see either.  So
// the SDK rejects such values itself, with ErrInvalidArgument naming the
// value, and leaves the exact bounds inside PostgreSQL's range to the engine.
// Text with a NUL character or invalid UTF-8 fails inside PostgreSQL with
// its own 22021, which says neither which argument nor which value.

// maxCount is the largest count an SQL int parameter takes.
const maxCount = math.MaxInt32

// maxSpan is the longest duration the engine takes anywhere (a delay, a
// TTL, a retry delay, a schedule period, an age): 100 years, compared as
// PostgreSQL compares intervals (a month as 30 days), so 1,200 months of
// 30 days.
const maxSpan = 1200 * 30 * 24 * time.Hour

// maxYears is how far from now a time may be: the engine adds 100 years
// to now() on the calendar, some 524 days more than maxSpan.
const maxYears = 100

// spanSlack widens the SDK's bound on times beyond maxYears from the
// client's clock, so that clock skew never makes the SDK refuse a time the
// engine, by the server's clock, would take; a time in the slack gets the
// engine's PQ006.
const spanSlack = 24 * time.Hour

// checkCount rejects n outside lo..maxCount.
func checkCount(op, what string, n, lo int) error {
	if n < lo || n > maxCount {
		return invalid(op, "%s %d is out of range: must be from %d to %d", what, n, lo, maxCount)
	}
	return nil
}

// checkSpan rejects a duration outside 0..maxSpan.
func checkSpan(op, what string, d time.Duration) error {
	if d < 0 || d > maxSpan {
		return invalid(op, "%s %v is out of range: must be from 0 to %v (100 years)", what, d, maxSpan)
	}
	return nil
}

// checkTime rejects a time more than maxYears from now, ahead or (back)
// behind, give or take spanSlack; the zero time is the caller's to handle.
func checkTime(op, what string, t time.Time, back bool) error {
	now := time.Now()
	if t.After(now.AddDate(maxYears, 0, 0).Add(spanSlack)) ||
		back && t.Before(now.AddDate(-maxYears, 0, 0).Add(-spanSlack)) ||
		t.Year() < 1 {
		within := "at most 100 years from now"
		if back {
			within = "from 100 years ago to 100 years from now"
		}
		return invalid(op, "%s %s is out of range: must be %s", what, t.Format(time.RFC3339Nano), within)
	}
	return nil
}

// checkText rejects text PostgreSQL's text type cannot hold: a NUL
// character or invalid UTF-8.
func checkText(op, what, v string) error {
	switch {
	case !utf8.ValidString(v):
		return invalid(op, "%s %.100q is not valid UTF-8", what, v)
	case strings.IndexByte(v, 0) >= 0:
		return invalid(op, "%s %.100q holds a NUL character", what, v)
	}
	return nil
}

// asText is s with each NUL character and invalid UTF-8 byte replaced by
// U+FFFD, so that it passes checkText.
func asText(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
