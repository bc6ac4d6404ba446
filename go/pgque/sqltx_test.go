package pgque_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/pgque/pgque/go/pgque"
)

// sqlDB opens database/sql on the client's database, with pgx's driver.
func sqlDB(t *testing.T, client *pgque.Client) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", client.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// A database/sql transaction carries pgque's calls beside its own writes:
// a send commits or rolls back with it, and engine errors keep their
// sentinels.
func TestSQLTx(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	db := sqlDB(t, client)
	if _, err := db.ExecContext(ctx, `CREATE TABLE orders (id int PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	for _, commit := range []bool{false, true} {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO orders VALUES (1)`); err != nil {
			t.Fatal(err)
		}
		id, err := client.SendTx(ctx, pgque.SQLTx(tx), "q", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 1}},
			pgque.WithDelay(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		evs, err := client.FindEventsTx(ctx, pgque.SQLTx(tx), "q", pgque.FindOptions{ThisTransaction: true})
		if err != nil || len(evs) != 1 || evs[0].MsgID != id || evs[0].Payload != `{"id":1}` || evs[0].DeliverAt == nil ||
			time.Until(*evs[0].DeliverAt) < 59*time.Minute || evs[0].CreatedAt.IsZero() {
			t.Fatalf("FindEventsTx in the database/sql transaction: %+v, %v", evs, err)
		}
		if commit {
			err = tx.Commit()
		} else {
			err = tx.Rollback()
		}
		if err != nil {
			t.Fatal(err)
		}
		evs, err = client.FindEvents(ctx, "q", pgque.FindOptions{})
		if err != nil || (len(evs) == 1) != commit {
			t.Fatalf("after commit=%v: %+v, %v", commit, evs, err)
		}
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := client.SendTx(ctx, pgque.SQLTx(tx), "nope", pgque.Event{Type: "t", Payload: 1}); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("SendTx to an unknown queue through database/sql: %v; want ErrQueueNotFound", err)
	}
}

// What database/sql cannot scan by itself (intervals, arrays) is converted
// with pgx's types; no row is pgx.ErrNoRows, as with pgx.
func TestSQLTxScan(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q")
	tx, err := sqlDB(t, client).BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	q := pgque.SQLTx(tx)
	var (
		d     time.Duration
		dn    *time.Duration
		ids   []int64
		s     *string
		at    time.Time
		count int
	)
	err = q.QueryRow(ctx, `SELECT interval '1 day 2 seconds', NULL::interval, ARRAY[3, 1, 2]::bigint[], NULL::text,
		timestamptz '2026-01-02 03:04:05+00', 7`).Scan(&d, &dn, &ids, &s, &at, &count)
	if err != nil || d != 24*time.Hour+2*time.Second || dn != nil || len(ids) != 3 || ids[0] != 3 || s != nil ||
		!at.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) || count != 7 {
		t.Fatalf("scan: %v %v %v %v %v %v, %v", d, dn, ids, s, at, count, err)
	}
	if err := q.QueryRow(ctx, `SELECT 1 WHERE false`).Scan(&count); !errors.Is(err, pgx.ErrNoRows) {
		t.Errorf("no row: %v; want pgx.ErrNoRows", err)
	}
	rows, err := q.Query(ctx, `SELECT g, g * interval '1 second' FROM generate_series(1, 3) g`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (time.Duration, error) {
		var n int
		var d time.Duration
		err := r.Scan(&n, &d)
		return d - time.Duration(n)*time.Second, err
	})
	if err != nil || len(got) != 3 || got[0] != 0 || got[2] != 0 {
		t.Errorf("query: %v, %v", got, err)
	}
	if tag, err := q.Exec(ctx, `SELECT pgque.force_tick('q')`); err != nil || tag.String() == "" {
		t.Errorf("exec: %v, %v", tag, err)
	}
}
