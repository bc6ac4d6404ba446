package pgque_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
)

// With many queues due at once (here 600, on a server whose lock table is
// small), ticker() ticks about half its lock budget of them per call, by
// whole groups of 64 queues (at least one group), and the next calls the
// rest, the groups in turn: every tick holds locks until the call's
// transaction ends.
func TestTickerBoundsTicksPerCall(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 600 queues on a server of its own; skipped in -short mode")
	}
	ctx := context.Background()
	// The lock budget is 40 × 20 / 8 = 100 locks: 50 ticks per call.
	pg, err := localpg.Start(ctx, localpg.Options{TrustTCP: true,
		Settings: map[string]string{"max_locks_per_transaction": "40", "max_connections": "20", "fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pg.Stop() })
	pool, err := pgxpool.New(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if _, err := pgque.Install(ctx, pool); err != nil {
		t.Fatal(err)
	}
	client := pgque.New(pool)
	const queues = 600
	for i := range queues {
		q := fmt.Sprintf("q%03d", i)
		if _, err := client.CreateQueue(ctx, q); err != nil {
			t.Fatalf("create %s: %v", q, err)
		}
		if _, err := client.Send(ctx, q, pgque.Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	var budget, groups int
	if err := pool.QueryRow(ctx, `SELECT pgque._lock_budget(), (SELECT count(*) FROM pgque.event_group)`).
		Scan(&budget, &groups); err != nil {
		t.Fatal(err)
	}
	const group = 64 // queues per event partition group
	per := max((budget-2*groups)/2, 16)
	most := max(per, group) // ticks per call: whole groups, at least one
	// The first group (q000 to q063) ticks first, and q599 (in the last one)
	// later.
	total, calls := 0, 0
	for total < queues {
		n, err := client.Tick(ctx)
		if err != nil {
			t.Fatalf("ticker() call %d: %v", calls+1, err)
		}
		calls++
		if n == 0 || n > most {
			t.Fatalf("ticker() call %d ticked %d queues; want 1 to %d", calls, n, most)
		}
		total += n
		if calls == 1 {
			q0, err0 := client.Queue(ctx, "q000")
			q599, err599 := client.Queue(ctx, "q599")
			if err0 != nil || err599 != nil || q0.NewEvents != 0 || q599.NewEvents != 1 {
				t.Errorf("after the first call: q000 %d new events (%v), q599 %d (%v); want 0 and 1",
					q0.NewEvents, err0, q599.NewEvents, err599)
			}
		}
	}
	if total != queues || calls > (queues+group-1)/group {
		t.Errorf("%d queues ticked in %d calls; want %d in at most %d", total, calls, queues, (queues+group-1)/group)
	}
	if n, err := client.Tick(ctx); err != nil || n != 0 {
		t.Errorf("ticker() after all ticked = %d, %v; want 0", n, err)
	}
	t.Logf("%d queues ticked in %d calls of at most %d", queues, calls, most)
}
