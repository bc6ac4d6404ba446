package pgque

import (
	"testing"
	"time"
)

// A consumer's pieces grow fourfold while full and fast, up to the
// catch-up bound and the memory bound; shrink when slow; and drop back once
// a piece is short.
func TestNextSize(t *testing.T) {
	c := &Consumer{cfg: consumerConfig{maxMessages: 100, maxCatchUp: 100_000}}
	off := &Consumer{cfg: consumerConfig{maxMessages: 100, maxCatchUp: 0}}
	const fast, ok, slow = time.Millisecond, 500 * time.Millisecond, 2 * time.Second
	for _, tc := range []struct {
		c                *Consumer
		size, got, bytes int
		took             time.Duration
		want             int
	}{
		{c, 100, 100, 100 * 300, fast, 400},
		{c, 25_600, 25_600, 25_600 * 300, fast, 55_924}, // 16 MiB of 300-byte messages
		{c, 25_600, 25_600, 25_600 * 10, fast, 100_000}, // the count bound
		{c, 64, 64, 64 << 20, fast, 100},                // 1 MiB messages: WithMaxMessages at least
		{c, 20_000, 20_000, 20_000 * 300, ok, 20_000},
		{c, 20_000, 20_000, 20_000 * 300, slow, 10_000},
		{c, 200, 200, 200 * 300, slow, 100},
		{c, 20_000, 19_999, 19_999 * 300, fast, 100},
		{off, 100, 100, 100 * 300, fast, 100},
	} {
		if got := tc.c.nextSize(tc.size, tc.got, tc.bytes, tc.took); got != tc.want {
			t.Errorf("nextSize(%d, %d, %d, %v) with bound %d = %d, want %d",
				tc.size, tc.got, tc.bytes, tc.took, tc.c.cfg.maxCatchUp, got, tc.want)
		}
	}
}
