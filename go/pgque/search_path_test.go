package pgque_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// The SDK's SQL names its types in pg_catalog, so a caller whose
// search_path puts another schema first does not run that schema's types:
// here domains that refuse every value stand in for hostile ones.
func TestHostileSearchPath(t *testing.T) {
	ctx := context.Background()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	setup, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer setup.Close()
	if _, err := setup.Exec(ctx, `CREATE SCHEMA evil;
		CREATE DOMAIN evil.text AS pg_catalog.text CHECK (false);
		CREATE DOMAIN evil.interval AS pg_catalog.interval CHECK (false);
		CREATE DOMAIN evil.timestamptz AS pg_catalog.timestamptz CHECK (false);
		CREATE DOMAIN evil.int4 AS pg_catalog.int4 CHECK (false)`); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = "evil, pg_catalog, public"
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var sp string
	if err := pool.QueryRow(ctx, `SHOW search_path`).Scan(&sp); err != nil || sp != "evil, pg_catalog, public" {
		t.Fatalf("search_path %q, %v", sp, err)
	}
	c := pgque.New(pool)
	if _, err := c.CreateQueue(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Subscribe(ctx, "q", "c"); err != nil {
		t.Fatal(err)
	}
	ev := pgque.Event{Type: "t", Payload: map[string]int{"n": 1}}
	if _, err := c.Send(ctx, "q", ev); err != nil {
		t.Fatalf("Send: %v", err)
	}
	if _, err := c.Send(ctx, "q", ev, pgque.WithDelay(time.Hour), pgque.WithUniqueKey("k"),
		pgque.WithUniqueTTL(time.Hour), pgque.WithMaxRetries(3)); err != nil {
		t.Fatalf("Send with options: %v", err)
	}
	x := "x"
	if _, err := c.SendBatch(ctx, "q", []pgque.Event{ev, ev}); err != nil {
		t.Fatalf("SendBatch: %v", err)
	}
	if _, err := c.SendBatch(ctx, "q", []pgque.Event{{Type: "t", Extra1: &x}}); err != nil {
		t.Fatalf("SendBatch with extra fields: %v", err)
	}
	for _, s := range []pgque.Schedule{{Name: "every", Queue: "q", Type: "t", Every: time.Hour},
		{Name: "cron", Queue: "q", Type: "t", Cron: "@daily"}} {
		if _, err := c.CreateSchedule(ctx, s); err != nil {
			t.Fatalf("CreateSchedule %s: %v", s.Name, err)
		}
	}
	if _, err := c.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	ms, err := c.Receive(ctx, "q", "c", 10)
	if err != nil || len(ms) != 4 {
		t.Fatalf("Receive: %d messages, %v; want 4", len(ms), err)
	}
	if err := c.Nack(ctx, ms[0].BatchID, ms[0], 5, "again"); err != nil {
		t.Fatalf("Nack: %v", err)
	}
}
