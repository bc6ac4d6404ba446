package pgque

import (
	"testing"
	"time"
)

// A consumer's pieces grow fourfold while full and fast, up to the
// catch-up bound; shrink when slow; and drop back once a piece is short.
func TestNextSize(t *testing.T) {
	c := &Consumer{cfg: consumerConfig{maxMessages: 100, maxCatchUp: 20_000}}
	off := &Consumer{cfg: consumerConfig{maxMessages: 100, maxCatchUp: 0}}
	for _, tc := range []struct {
		c         *Consumer
		size, got int
		took      time.Duration
		want      int
	}{
		{c, 100, 100, time.Millisecond, 400},
		{c, 6400, 6400, 10 * time.Millisecond, 20_000},
		{c, 20_000, 20_000, 10 * time.Millisecond, 20_000},
		{c, 20_000, 20_000, 500 * time.Millisecond, 20_000},
		{c, 20_000, 20_000, 2 * time.Second, 10_000},
		{c, 200, 200, 2 * time.Second, 100},
		{c, 20_000, 19_999, time.Millisecond, 100},
		{off, 100, 100, time.Millisecond, 100},
	} {
		if got := tc.c.nextSize(tc.size, tc.got, tc.took); got != tc.want {
			t.Errorf("nextSize(%d, %d, %v) with bound %d = %d, want %d",
				tc.size, tc.got, tc.took, tc.c.cfg.maxCatchUp, got, tc.want)
		}
	}
}
