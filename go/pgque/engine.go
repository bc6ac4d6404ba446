package pgque

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/extension"
)

// ErrEngineMismatch: the database's engine is another build than the one
// this program embeds.  A different version is brought up to date by
// Install; another build of the same version (a development build, or a
// server whose extension files are stale) cannot be, and may lack functions
// this program calls.
var ErrEngineMismatch = errors.New("pgque: the database's engine is not this program's")

// Engine identifies a pgque engine: its release and its build.
type Engine struct {
	Version string `json:"version"` // pgque.version(), e.g. "1.0.0"
	// ID is pgque.engine_id(), a digest of the engine's source: two builds
	// of one version differ in it.  Empty for builds older than the id.
	ID string `json:"id"`
}

// EmbeddedEngine is the engine this program installs (Install, `pgque
// migrate`) and expects to find.
func EmbeddedEngine() Engine {
	return Engine{Version: extension.EngineVersion(), ID: extension.EngineID()}
}

func (e Engine) String() string {
	if e.ID == "" {
		return e.Version + " (build unknown)"
	}
	return e.Version + " (build " + e.ID + ")"
}

// InstalledEngine returns the engine installed in the database.  It fails
// with ErrNotInstalled when there is none.
func (c *Client) InstalledEngine(ctx context.Context) (Engine, error) {
	return installedEngine(ctx, c.q())
}

// InstalledEngineTx is InstalledEngine inside tx.  On a database without
// pgque it aborts tx, as any failed statement does.
func (c *Client) InstalledEngineTx(ctx context.Context, tx DBTX) (Engine, error) {
	return installedEngine(ctx, tx)
}

func installedEngine(ctx context.Context, q DBTX) (Engine, error) {
	var e Engine
	var hasID bool
	// Builds older than engine_id() have none; asking only where it exists
	// keeps a caller's transaction from aborting.
	err := q.QueryRow(ctx, `SELECT pgque.version(),
		pg_catalog.to_regprocedure('pgque.engine_id()') IS NOT NULL`).Scan(&e.Version, &hasID)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "3F000" || pgErr.Code == "42883") {
		// invalid_schema_name, undefined_function: no pgque.version()
		return Engine{}, fmt.Errorf("%w ('pgque migrate' installs it): %s", ErrNotInstalled, pgErr.Message)
	}
	if err == nil && hasID {
		err = q.QueryRow(ctx, `SELECT pgque.engine_id()`).Scan(&e.ID)
	}
	if err != nil {
		return Engine{}, wrap("pgque: installed engine", err)
	}
	return e, nil
}

// CheckEngine fails unless the database's engine is the one this program
// embeds (EmbeddedEngine): with ErrNotInstalled when it has none, and with
// ErrEngineMismatch, naming both, when it has another.  Long-running
// processes (the ticker, the HTTP server) call it on start, so that a
// mismatch is reported once, clearly, instead of as failing calls.
func (c *Client) CheckEngine(ctx context.Context) error {
	db, err := c.InstalledEngine(ctx)
	if err != nil {
		return err
	}
	return EngineMismatch(db, EmbeddedEngine())
}

// EngineMismatch explains how the database's engine db differs from want,
// as an error matching ErrEngineMismatch, or is nil when they are the same.
func EngineMismatch(db, want Engine) error {
	switch {
	case db == want:
		return nil
	case db.Version != want.Version:
		return fmt.Errorf("%w: the database has pgque %s, this program's is %s "+
			"(the older one's side upgrades: 'pgque migrate', or pgque.Install, of the newer)",
			ErrEngineMismatch, db, want)
	default:
		return fmt.Errorf("%w: the database has pgque %s, this program's is %s: another build of the "+
			"same version, which cannot be brought up to date in place; use the build that installed it, "+
			"or reinstall (DROP EXTENSION pgque CASCADE, or DROP SCHEMA pgque CASCADE for a plain-SQL "+
			"install, drops every queue)", ErrEngineMismatch, db, want)
	}
}
