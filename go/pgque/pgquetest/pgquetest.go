// Package pgquetest starts throwaway PostgreSQL servers with pgque installed,
// for pgque's own tests and for tests of code that uses pgque, and has
// assertions for those tests: that a transaction or a function sent an
// event (RequireSent, RequireSentTx), and "handle what is pending now"
// (Work) for testing handlers.
//
// It needs the PostgreSQL server programs (initdb, pg_ctl, postgres) of
// PostgreSQL 15 to 18: in the directory $PGQUE_PG_BIN names, else on PATH,
// else under /usr/lib/postgresql/*/bin.  PostgreSQL refuses to run as root:
// run as root, the server runs as the `postgres` user, or a `pgque` system
// user created for it.  A server is shared by the tests of a package; each
// test gets a database of its own:
//
//	var srv *pgquetest.Server
//
//	func TestMain(m *testing.M) {
//		var err error
//		srv, err = pgquetest.Start(context.Background())
//		if err != nil {
//			log.Fatal(err)
//		}
//		code := m.Run()
//		srv.Cleanup()
//		os.Exit(code)
//	}
//
//	func TestSomething(t *testing.T) {
//		client := pgque.New(srv.NewPool(t))
//		...
//	}
package pgquetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
)

// Server is a running throwaway PostgreSQL server.
type Server struct {
	pg   *localpg.Server
	opts []pgque.InstallOption
}

// testSettings trade durability for speed: a test server's data is thrown
// away anyway.  Its TCP port (127.0.0.1) trusts every role, so that roles a
// test creates can log in without passwords.
var testSettings = map[string]string{
	"fsync":              "off",
	"synchronous_commit": "off",
	"full_page_writes":   "off",
	"shared_buffers":     "128MB",
}

// Start starts a server.  Databases made by NewDatabase get pgque installed
// with opts (see pgque.Install).  Call Cleanup when done.
func Start(ctx context.Context, opts ...pgque.InstallOption) (*Server, error) {
	pg, err := localpg.Start(ctx, localpg.Options{Settings: testSettings, TrustTCP: true})
	if err != nil {
		return nil, fmt.Errorf("pgquetest: %w", err)
	}
	return &Server{pg: pg, opts: opts}, nil
}

// Cleanup stops the server and deletes its data.
func (s *Server) Cleanup() { _ = s.pg.Stop() }

// NewDatabase creates a database with pgque installed and returns its
// connection string (the server's superuser's).
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "pgquetest_" + hex.EncodeToString(b[:])
	conn, err := pgx.Connect(ctx, s.pg.DSN)
	if err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
	u, err := url.Parse(s.pg.DSN)
	if err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
	u.Path = "/" + name
	dsn := u.String()
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
	defer pool.Close()
	if _, err := pgque.Install(ctx, pool, s.opts...); err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
	return dsn, nil
}

// NewPool creates a database with pgque installed and returns a pool on it,
// closed when the test ends.  It fails the test on error.
func (s *Server) NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	dsn, err := s.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}
