package pgque_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

// srv is the throwaway server shared by this package's tests; each test gets
// a database of its own.
var srv *pgquetest.Server

func TestMain(m *testing.M) {
	var err error
	srv, err = pgquetest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Cleanup()
	os.Exit(code)
}

// newClient returns a client on a fresh database with queue q and consumer
// "c" subscribed to it.
func newClient(t *testing.T, q string, consumers ...string) *pgque.Client {
	t.Helper()
	ctx := context.Background()
	client := pgque.New(srv.NewPool(t))
	if _, err := client.CreateQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, c := range consumers {
		if _, err := client.Subscribe(ctx, q, c); err != nil {
			t.Fatal(err)
		}
	}
	return client
}

// ownServer starts a PostgreSQL server for one test (stopped at its end),
// for tests that stop, crash or front it, and returns it with the DSN of
// its database db, where pgque is installed.  Its TCP port trusts every
// role (localpg.Options.TrustTCP).
func ownServer(t *testing.T, db string, settings map[string]string) (*localpg.Server, string) {
	t.Helper()
	ctx := context.Background()
	pg, err := localpg.Start(ctx, localpg.Options{TrustTCP: true, Settings: settings})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin, err := pgx.Connect(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{db}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + db
	pool, err := pgxpool.New(ctx, u.String())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := pgque.Install(ctx, pool); err != nil {
		t.Fatal(err)
	}
	return pg, u.String()
}
