package pgque

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"

	"github.com/pgque/pgque/extension"
)

// InstallMethod says how pgque was installed in a database.
type InstallMethod string

const (
	// InstalledExtension: CREATE EXTENSION pgque, the server has the extension files.
	InstalledExtension InstallMethod = "extension"
	// InstalledSQL: the same engine applied as plain SQL through tern
	// migrations (version table pgque.schema_version), for servers such as
	// managed PostgreSQL where custom extensions cannot be installed.
	InstalledSQL InstallMethod = "sql"
)

type installConfig struct{ sqlOnly bool }

// InstallOption configures Install.
type InstallOption func(*installConfig)

// WithoutExtension makes Install apply plain SQL even where the server has
// the extension files.
func WithoutExtension() InstallOption { return func(c *installConfig) { c.sqlOnly = true } }

// installLockKey serializes concurrent installers of one database.
const installLockKey = 1886482290

// Install installs pgque into the pool's database, or brings an existing
// install up to date, and returns how it is installed.  It uses CREATE
// EXTENSION when the server has the pgque extension files and otherwise (or
// with WithoutExtension) applies the embedded SQL through tern migrations.
// An existing install keeps its method.  Needs a role that may create
// schemas and roles (a superuser for CREATE EXTENSION).
func Install(ctx context.Context, pool *pgxpool.Pool, opts ...InstallOption) (InstallMethod, error) {
	var cfg installConfig
	for _, opt := range opts {
		opt(&cfg)
	}
	// The install lock is per database (advisory locks are), but the pgque
	// roles belong to the whole cluster: installs into two databases at once
	// can both find a role missing, and the second CREATE ROLE then fails
	// (unique_violation, or duplicate_object).  Its install rolled back as a
	// whole; the next attempt finds the role.
	for attempt := 1; ; attempt++ {
		m, err := install(ctx, pool, cfg)
		var pgErr *pgconn.PgError
		if err != nil && attempt < 3 && ctx.Err() == nil && errors.As(err, &pgErr) &&
			(pgErr.Code == "23505" || pgErr.Code == "42710") {
			continue
		}
		return m, err
	}
}

func install(ctx context.Context, pool *pgxpool.Pool, cfg installConfig) (InstallMethod, error) {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, installLockKey); err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	defer conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, installLockKey) //nolint:errcheck

	var hasExt, hasSchema, available bool
	err = conn.QueryRow(ctx, `
		SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgque'),
		       EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'pgque'),
		       EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgque' AND default_version = $1)`,
		extension.Version).Scan(&hasExt, &hasSchema, &available)
	if err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	switch {
	case hasExt:
		// Moves to the server's default version; a no-op when current.
		if _, err := conn.Exec(ctx, `ALTER EXTENSION pgque UPDATE`); err != nil {
			return "", fmt.Errorf("pgque: install: update extension: %w", err)
		}
		return InstalledExtension, nil
	case available && !hasSchema && !cfg.sqlOnly:
		if _, err := conn.Exec(ctx, `CREATE EXTENSION pgque`); err != nil {
			return "", fmt.Errorf("pgque: install: create extension: %w", err)
		}
		return InstalledExtension, nil
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS pgque`); err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "pgque.schema_version")
	if err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	m.AppendMigration("pgque "+extension.Version, extension.InstallSQL(), "")
	if err := m.Migrate(ctx); err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	return InstalledSQL, nil
}
