package pgque

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/internal/errtable"
)

// Sentinel errors, one per meaning of the SQLSTATEs the engine raises
// (class PQ) and of the few of PostgreSQL's own that pgque gives a meaning
// to; the comment of each names its codes.  Match them with errors.Is; the
// error returned keeps the server's message.  The same values match the
// errors of the HTTP client, package pgquehttp.
var (
	// ErrQueueNotFound: no queue by that name.
	ErrQueueNotFound error = errtable.ErrQueueNotFound // PQ001
	// ErrQueueExists: a queue by that name exists already.
	ErrQueueExists error = errtable.ErrQueueExists // PQ002
	// ErrConsumerNotFound: the consumer is not subscribed to the queue.
	ErrConsumerNotFound error = errtable.ErrConsumerNotFound // PQ003
	// ErrBatchNotFound: the batch is unknown or no longer open.
	ErrBatchNotFound error = errtable.ErrBatchNotFound // PQ004
	// ErrMessageNotFound: the message was not handed out in the piece, or
	// was acknowledged already.
	ErrMessageNotFound error = errtable.ErrMessageNotFound // PQ005
	// ErrInvalidArgument: a malformed name, an unknown setting or a value
	// outside its range (PQ006), or text PostgreSQL cannot hold: a NUL
	// character or invalid UTF-8 (22021, character_not_in_repertoire) or
	// \u0000 in a jsonb (22P05, untranslatable_character).  The SDK's own
	// checks before SQL match it too.
	ErrInvalidArgument error = errtable.ErrInvalidArgument // PQ006, 22021, 22P05
	// ErrQueueHasConsumers: the queue still has consumers.
	ErrQueueHasConsumers error = errtable.ErrQueueHasConsumers // PQ007
	// ErrDeadLetterNotFound: no dead letter by that id.
	ErrDeadLetterNotFound error = errtable.ErrDeadLetterNotFound // PQ008
	// ErrWrongTransactionMode: the call must run at READ COMMITTED.
	ErrWrongTransactionMode error = errtable.ErrWrongTransactionMode // PQ009
	// ErrNotScheduled: the id is not a delayed event of the queue (or was
	// done long ago).
	ErrNotScheduled error = errtable.ErrNotScheduled // PQ010
	// ErrScheduleExists: the schedule's name is taken in its namespace.
	ErrScheduleExists error = errtable.ErrScheduleExists // PQ015
	// ErrScheduleNotFound: no schedule by that name.
	ErrScheduleNotFound error = errtable.ErrScheduleNotFound // PQ016
	// ErrConsumerBusy: a worker asked while a plain reader has the
	// consumer's own batch open (or the other way round).
	ErrConsumerBusy error = errtable.ErrConsumerBusy // PQ025
	// ErrWorkerBusy: the worker holds a batch.
	ErrWorkerBusy error = errtable.ErrWorkerBusy // PQ026
	// ErrNotAPiece: a batch's id was passed where the id of a piece is
	// wanted (Ack, Nack, Heartbeat take Message.BatchID, the piece the
	// messages were handed out in).
	ErrNotAPiece error = errtable.ErrNotAPiece // PQ027
	// ErrTakenOver: the batch the piece came from was taken over by another
	// worker (this worker's lease ran out): its messages are the other's
	// now, and nothing was acknowledged or nacked.
	ErrTakenOver error = errtable.ErrTakenOver // PQ028
	// ErrPermissionDenied: the session's role may not do this to the queue
	// (namespace grants, pgque.grant_access) or may not call the function
	// (42501, insufficient_privilege).
	ErrPermissionDenied error = errtable.ErrPermissionDenied // 42501
	// ErrNotInstalled: the database has no pgque engine (3F000,
	// invalid_schema_name: schema pgque does not exist).  Every call
	// reports it; Install (or `pgque migrate`) installs the engine.
	ErrNotInstalled error = errtable.ErrNotInstalled // 3F000
)

// Error is an error raised by the pgque engine.  errors.Is(err, ErrX) is true
// for the sentinel of its SQLSTATE; errors.As gives the *pgconn.PgError.
type Error struct {
	Op   string // the SDK call, e.g. "send"
	Code string // SQLSTATE, e.g. "PQ001"
	Err  *pgconn.PgError
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.Op, e.Err.Message, e.Code)
}

func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel error of e's SQLSTATE.
func (e *Error) Is(target error) bool {
	t := errtable.BySQLState(e.Code)
	return t != nil && t.Err == target
}

// wrap gives err the operation's name, turning the SQLSTATEs of the error
// table (pgque's own, and PostgreSQL's it gives a meaning to, such as
// 3F000 for a database without pgque) into *Error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if errtable.BySQLState(pgErr.Code) != nil {
			return &Error{Op: op, Code: pgErr.Code, Err: pgErr}
		}
	} else if strings.Contains(err.Error(), "failed to encode args[") {
		// pgx could not send an argument as its SQL type (a count beyond
		// an SQL int): the caller's value, which the calls check before
		// SQL where they can.  pgx has no error type for it, only this
		// wording (the fuzz seeds of FuzzSDK catch a change).
		return fmt.Errorf("%s: %w (%w)", op, err, ErrInvalidArgument)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// invalid reports a bad argument caught before reaching the server.
func invalid(op, format string, args ...any) error {
	return fmt.Errorf("%s: %s: %w", op, fmt.Sprintf(format, args...), ErrInvalidArgument)
}
