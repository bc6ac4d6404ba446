package bench

import (
	"os"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// utime 1234 and stime 66 ticks; the command name holds a space and a
	// parenthesis, as a process may name itself.
	stat := "4242 (post gres) x) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 66 0 0 20 0 1 0 100 1000 10\n"
	got, err := parseStatCPU([]byte(stat))
	if err != nil {
		t.Fatal(err)
	}
	if want := 13 * time.Second; got != want {
		t.Errorf("parseStatCPU = %v, want %v", got, want)
	}
	if _, err := parseStatCPU([]byte("4242 (postgres) S 1 2 3")); err == nil {
		t.Error("a truncated stat line: no error")
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		if _, err := procCPU("/proc/self/stat"); err != nil {
			t.Errorf("this process: %v", err)
		}
	}
}

func TestEdgeMeans(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	for _, c := range []struct {
		ds          []time.Duration
		k           int
		first, last time.Duration
	}{
		{ms(1, 3, 10, 20, 30), 2, 2 * time.Millisecond, 25 * time.Millisecond},
		// k is cut to half the creates, so the two ends never share one.
		{ms(1, 3, 10, 20, 30), 100, 2 * time.Millisecond, 25 * time.Millisecond},
		{ms(4, 8), 100, 4 * time.Millisecond, 8 * time.Millisecond},
		{ms(4), 100, 0, 0},
	} {
		first, last := edgeMeans(c.ds, c.k)
		if first != c.first || last != c.last {
			t.Errorf("edgeMeans(%v, %d) = %v, %v; want %v, %v", c.ds, c.k, first, last, c.first, c.last)
		}
	}
}

// TestSpreadKey checks that events of different queues, whose ids come from
// sequences of their own, get different keys, and that the keys stay dense.
func TestSpreadKey(t *testing.T) {
	const queues, ids = 7, 50
	seen := map[int64]bool{}
	var top int64
	for q := range queues {
		for id := int64(1); id <= ids; id++ {
			k := spreadKey(id, q, queues)
			if seen[k] {
				t.Fatalf("queue %d id %d: key %d taken", q, id, k)
			}
			seen[k] = true
			top = max(top, k)
		}
	}
	if top >= (ids+1)*queues {
		t.Errorf("largest key %d for %d events: not dense", top, queues*ids)
	}
}
