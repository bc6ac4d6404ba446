package pgque

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/internal/retry"
)

// The long-running loops (Ticker, Consumer) tell two kinds of failure
// apart.  A server error is an answer: the server ran the statement and
// refused it with an SQLSTATE (a full disk, an engine error such as PQ006,
// a missing privilege).  The connection is fine, so reconnecting would not
// help; the call is repeated after a backoff and the error is logged with
// its SQLSTATE, so that the log says what failed.  A connection error means
// the server could not be reached or went away (or is shutting down or
// starting up): only then is the connection dropped and a new one made.

// serverError returns the server's error within err, or nil when err is a
// connection error (or no server error at all).
func serverError(err error) *pgconn.PgError {
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) {
		return nil
	}
	switch {
	case strings.HasPrefix(pgErr.Code, "08"), // connection_exception
		pgErr.Code == "57P01", // admin_shutdown
		pgErr.Code == "57P02", // crash_shutdown
		pgErr.Code == "57P03", // cannot_connect_now: starting up or in recovery
		pgErr.Code == "53300": // too_many_connections
		return nil
	}
	return pgErr
}

// connectionError reports whether err means the connection is lost or
// cannot be made, so that a new one is needed.  Context errors are not.
func connectionError(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	return serverError(err) == nil
}

// describe renders a failure for logs: for a server error its SQLSTATE and
// message first, e.g. "ticker(): PQ006 pgque: invalid ...", whatever
// wrapping the error went through; for anything else the error itself.
func describe(what string, err error) string {
	if pgErr := serverError(err); pgErr != nil {
		return fmt.Sprintf("%s: %s %s", what, pgErr.Code, pgErr.Message)
	}
	return fmt.Sprintf("%s: %v", what, err)
}

// backoff is the waits between retries of the Ticker and the Consumer (see
// package retry: from 50 ms doubling to 500 ms, with jitter).
type backoff struct{ b retry.Backoff }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) next() time.Duration { return b.b.Next() }

func (b *backoff) reset() { b.b.Reset() }

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}

// reconnect runs session until ctx ends, again after each end, waiting
// with backoff in between: a session that got going (its first result)
// resets the backoff.  lost reports each end that ctx did not cause, with
// the wait before the next session.
func reconnect(ctx context.Context, session func(context.Context) (bool, error), lost func(err error, wait time.Duration)) {
	b := newBackoff()
	for ctx.Err() == nil {
		started, err := session(ctx)
		if ctx.Err() != nil {
			return
		}
		if started {
			b.reset()
		}
		wait := b.next()
		lost(err, wait)
		if !sleep(ctx, wait) {
			return
		}
	}
}
