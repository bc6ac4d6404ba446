package pgque

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// DBTX is a transaction the SDK's Tx calls (SendTx, AckTx, ...) run in: a
// pgx.Tx (or a *pgx.Conn, *pgxpool.Conn, inside a transaction you began on
// it), or a database/sql transaction through SQLTx.
type DBTX interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SQLTx adapts a database/sql transaction to DBTX, so that pgque's calls
// run in it, beside the writes of code built on database/sql (sqlc, ORMs).
// The *sql.DB must use pgx's driver (github.com/jackc/pgx/v5/stdlib,
// driver name "pgx"), which hands pgque's arguments to PostgreSQL as pgx
// does.
func SQLTx(tx *sql.Tx) DBTX { return sqlTx{tx: tx, types: pgtype.NewMap()} }

type sqlTx struct {
	tx *sql.Tx
	// types converts the values database/sql hands over (text for types it
	// has none of, such as interval and arrays) into the SDK's Go types.
	types *pgtype.Map
}

func (t sqlTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	res, err := t.tx.ExecContext(ctx, sql, args...)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	n, _ := res.RowsAffected()
	return pgconn.NewCommandTag(fmt.Sprintf("SELECT %d", n)), nil
}

func (t sqlTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	rows, err := t.tx.QueryContext(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return &sqlRows{rows: rows, types: t.types}, nil
}

func (t sqlTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	rows, err := t.Query(ctx, sql, args...)
	return sqlRow{rows: rows, err: err}
}

// sqlDest wraps what database/sql cannot scan into by itself (durations,
// slices other than []byte) in a scanner of pgx's types.
func sqlDest(types *pgtype.Map, dest []any) []any {
	out := make([]any, len(dest))
	for i, d := range dest {
		out[i] = d
		if d == nil {
			out[i] = new(any) // pgx skips a nil destination; database/sql does not
			continue
		}
		if _, ok := d.(sql.Scanner); ok {
			continue
		}
		t := reflect.TypeOf(d).Elem() // destinations are pointers
		nullable := t.Kind() == reflect.Pointer
		if nullable {
			t = t.Elem()
		}
		if t != reflect.TypeOf(time.Duration(0)) && (t.Kind() != reflect.Slice || t.Elem().Kind() == reflect.Uint8) {
			continue
		}
		if nullable {
			out[i] = nullScanner{types: types, dest: reflect.ValueOf(d).Elem()}
		} else {
			out[i] = types.SQLScanner(d)
		}
	}
	return out
}

// nullScanner scans into a **T: nil for NULL, else a new T.
type nullScanner struct {
	types *pgtype.Map
	dest  reflect.Value // the *T to set
}

func (s nullScanner) Scan(src any) error {
	if src == nil {
		s.dest.Set(reflect.Zero(s.dest.Type()))
		return nil
	}
	v := reflect.New(s.dest.Type().Elem())
	if err := s.types.SQLScanner(v.Interface()).Scan(src); err != nil {
		return err
	}
	s.dest.Set(v)
	return nil
}

type sqlRow struct {
	rows pgx.Rows
	err  error
}

func (r sqlRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return pgx.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	r.rows.Close()
	return r.rows.Err()
}

// sqlRows is *sql.Rows as pgx.Rows, for what the SDK reads of it.
type sqlRows struct {
	rows  *sql.Rows
	types *pgtype.Map
	err   error
}

func (r *sqlRows) Close()                                       { _ = r.rows.Close() }
func (r *sqlRows) CommandTag() pgconn.CommandTag                { return pgconn.CommandTag{} }
func (r *sqlRows) FieldDescriptions() []pgconn.FieldDescription { return nil }
func (r *sqlRows) RawValues() [][]byte                          { return nil }
func (r *sqlRows) Conn() *pgx.Conn                              { return nil }
func (r *sqlRows) TypeMap() *pgtype.Map                         { return r.types }
func (r *sqlRows) Next() bool                                   { return r.err == nil && r.rows.Next() }

func (r *sqlRows) Err() error {
	if r.err != nil {
		return r.err
	}
	return r.rows.Err()
}

func (r *sqlRows) Scan(dest ...any) error {
	if err := r.rows.Scan(sqlDest(r.types, dest)...); err != nil {
		r.err = err
		return err
	}
	return nil
}

func (r *sqlRows) Values() ([]any, error) {
	cols, err := r.rows.Columns()
	if err != nil {
		return nil, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	if err := r.rows.Scan(ptrs...); err != nil {
		return nil, err
	}
	return vals, nil
}
