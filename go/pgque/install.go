package pgque

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
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
// An existing install keeps its method.  It fails with ErrEngineMismatch,
// and installs nothing, when the server's extension files hold another
// engine than this program embeds (EmbeddedEngine), and when the database
// keeps another build of this version, which cannot be updated.  Needs a role that may create
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
		return InstalledExtension, checkInstalled(ctx, conn.Conn())
	case available && !hasSchema && !cfg.sqlOnly:
		return InstalledExtension, createExtension(ctx, conn.Conn())
	}
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS pgque`); err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	m, err := migrate.NewMigrator(ctx, conn.Conn(), "pgque.schema_version")
	if err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	for _, step := range extension.Migrations() {
		m.AppendMigration(step.Name, step.SQL, "")
	}
	if err := m.Migrate(ctx); err != nil {
		return "", fmt.Errorf("pgque: install: %w", err)
	}
	return InstalledSQL, checkInstalled(ctx, conn.Conn())
}

// createExtension runs CREATE EXTENSION, and takes it back when the
// server's extension files turn out to hold another engine than this
// program's (a stale `make install`, another build of the version): the
// database is left as it was, and the error says where the files are.
func createExtension(ctx context.Context, conn *pgx.Conn) error {
	tx, err := conn.Begin(ctx)
	if err != nil {
		return fmt.Errorf("pgque: install: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck
	if _, err := tx.Exec(ctx, `CREATE EXTENSION pgque`); err != nil {
		return fmt.Errorf("pgque: install: create extension: %w", err)
	}
	db, err := installedEngine(ctx, tx)
	if err != nil {
		return fmt.Errorf("pgque: install: %w", err)
	}
	if want := EmbeddedEngine(); EngineMismatch(db, want) != nil {
		var dir string
		if err := tx.QueryRow(ctx, `SELECT setting FROM pg_catalog.pg_config WHERE name = 'SHAREDIR'`).Scan(&dir); err != nil {
			dir = "the server's share directory"
		}
		return fmt.Errorf("pgque: install: %w: the server's extension files (%s/extension/pgque--%s.sql) "+
			"hold pgque %s, this program's is %s; nothing was installed: install this build's files "+
			"(make install), or install as plain SQL (pgque migrate --sql, or WithoutExtension)",
			ErrEngineMismatch, dir, extension.Version, db, want)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("pgque: install: %w", err)
	}
	return nil
}

// checkInstalled fails unless the database now has this program's engine.
func checkInstalled(ctx context.Context, conn *pgx.Conn) error {
	db, err := installedEngine(ctx, conn)
	if err != nil {
		return fmt.Errorf("pgque: install: %w", err)
	}
	if err := EngineMismatch(db, EmbeddedEngine()); err != nil {
		return fmt.Errorf("pgque: install: %w", err)
	}
	return nil
}
