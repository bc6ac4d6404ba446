// Package pgquetest starts throwaway PostgreSQL servers with pgque installed,
// for pgque's own tests and for tests of code that uses pgque.
//
// It needs the PostgreSQL server programs (initdb, pg_ctl) on PATH or under
// /usr/lib/postgresql/*/bin, and, since PostgreSQL refuses to run as root, a
// non-root user.  A server is shared by the tests of a package; each test
// gets a database of its own:
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
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"zombiezen.com/go/postgrestest"

	"github.com/pgque/pgque/go/pgque"
)

// Server is a running throwaway PostgreSQL server.
type Server struct {
	pg   *postgrestest.Server
	opts []pgque.InstallOption
}

// Start starts a server.  Databases made by NewDatabase get pgque installed
// with opts (see pgque.Install).  Call Cleanup when done.
func Start(ctx context.Context, opts ...pgque.InstallOption) (*Server, error) {
	if os.Geteuid() == 0 {
		return nil, errors.New("pgquetest: PostgreSQL refuses to run as root; run the tests as an unprivileged user (make test does)")
	}
	pg, err := postgrestest.Start(ctx)
	if err != nil {
		return nil, fmt.Errorf("pgquetest: %w", err)
	}
	return &Server{pg: pg, opts: opts}, nil
}

// Cleanup stops the server and deletes its data.
func (s *Server) Cleanup() { s.pg.Cleanup() }

// NewDatabase creates a database with pgque installed and returns its
// connection string.
func (s *Server) NewDatabase(ctx context.Context) (string, error) {
	dsn, err := s.pg.CreateDatabase(ctx)
	if err != nil {
		return "", fmt.Errorf("pgquetest: %w", err)
	}
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
