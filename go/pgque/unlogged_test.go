package pgque_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// A standby promoted before its first restartpoint after pgque made an
// unlogged sequence has that sequence as a page of zeros (PostgreSQL
// replays the creation into buffers only, and the promotion resets the
// sequence from its file).  This test makes that state on a primary: the
// sequence's files are zeroed while the server is down, and its crash
// recovery copies the zeroed starting file over it, as a promotion does.
// Sends fail then; maint() makes the sequences again and everything sent
// before is still delivered.
func TestUnreadableUnloggedSequences(t *testing.T) {
	ctx := context.Background()
	pg, dsn := ownServer(t, "promoted", nil)
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	client := pgque.New(pool)
	if _, err := client.CreateQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}
	before, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: "before"})
	if err != nil {
		t.Fatal(err)
	}
	// The ticker's registers and the queue's group hint: one of each kind.
	var files []string
	for _, seq := range []string{"pgque.tick_pass", "pgque.idle_due", "pgque.event_g0_hint"} {
		var path string
		if err := pool.QueryRow(ctx, `SELECT pg_relation_filepath($1::regclass)`, seq).Scan(&path); err != nil {
			t.Fatal(err)
		}
		files = append(files, filepath.Join(pg.Dir, path), filepath.Join(pg.Dir, path+"_init"))
	}
	pool.Close()

	if err := pg.Crash(); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if err := os.WriteFile(f, make([]byte, 8192), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err = pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	client = pgque.New(pool)

	_, err = client.Send(ctx, "q", pgque.Event{Type: "t", Payload: "broken"})
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "XX000" || !strings.Contains(pgErr.Message, "bad magic number") {
		t.Fatalf("send with the group's hint zeroed: %v; want XX000 bad magic number (the test did not make the state)", err)
	}
	if _, err := client.Maint(ctx); err != nil {
		t.Fatalf("maint with unreadable sequences: %v", err)
	}
	after, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: "after"})
	if err != nil {
		t.Fatalf("send after maint: %v", err)
	}
	if _, err := pool.Exec(ctx, `SELECT pgque.ticker()`); err != nil {
		t.Fatalf("ticker after maint: %v", err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	var got []int64
	for range 3 {
		msgs, err := client.Receive(ctx, "q", "c", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			got = append(got, m.MsgID)
		}
		if len(msgs) > 0 {
			if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := client.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != 2 || got[0] != before || got[1] != after {
		t.Fatalf("received %v; want the events sent before and after, %d and %d", got, before, after)
	}
	// Made again, they stay the extension's own, so that a drop takes them.
	var members int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_depend d JOIN pg_extension e ON e.oid = d.refobjid
		WHERE d.classid = 'pg_class'::regclass AND d.objid IN ('pgque.tick_pass'::regclass, 'pgque.idle_due'::regclass)
		  AND e.extname = 'pgque' AND d.deptype = 'e'`).Scan(&members); err != nil {
		t.Fatal(err)
	}
	if members != 2 {
		t.Errorf("%d of the 2 remade registers are members of the extension", members)
	}
}
