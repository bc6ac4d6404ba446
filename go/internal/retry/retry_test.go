package retry

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	var b Backoff
	var total time.Duration
	for i, want := range []time.Duration{First, 2 * First, 4 * First, 8 * First, Max, Max, Max} {
		got := b.Next()
		if got < want/2 || got > want {
			t.Errorf("wait %d = %v, want within [%v, %v]", i, got, want/2, want)
		}
		total += got
	}
	if total > 3*time.Second {
		t.Errorf("seven waits took %v", total)
	}
	b.Reset()
	if got := b.Next(); got < First/2 || got > First {
		t.Errorf("wait after Reset = %v, want within [%v, %v]", got, First/2, First)
	}
}
