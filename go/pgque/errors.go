package pgque

import (
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
)

// Sentinel errors, one per SQLSTATE the engine raises (class PQ), and the few
// of PostgreSQL's own that mean the same (table below).  Match them with
// errors.Is; the error returned keeps the server's message.
var (
	ErrQueueNotFound        = errors.New("pgque: queue not found")                      // PQ001
	ErrQueueExists          = errors.New("pgque: queue already exists")                 // PQ002
	ErrConsumerNotFound     = errors.New("pgque: consumer not subscribed")              // PQ003
	ErrBatchNotFound        = errors.New("pgque: batch not open")                       // PQ004
	ErrMessageNotFound      = errors.New("pgque: message not in batch")                 // PQ005
	ErrInvalidArgument      = errors.New("pgque: invalid argument")                     // PQ006
	ErrQueueHasConsumers    = errors.New("pgque: queue has consumers")                  // PQ007
	ErrDeadLetterNotFound   = errors.New("pgque: dead letter not found")                // PQ008
	ErrWrongTransactionMode = errors.New("pgque: wrong transaction isolation level")    // PQ009
	ErrNotScheduled         = errors.New("pgque: not a scheduled event")                // PQ010
	ErrScheduleExists       = errors.New("pgque: schedule already exists")              // PQ015
	ErrScheduleNotFound     = errors.New("pgque: schedule not found")                   // PQ016
	ErrConsumerBusy         = errors.New("pgque: consumer has a batch of its own open") // PQ025
	ErrWorkerBusy           = errors.New("pgque: worker holds a batch")                 // PQ026
	// ErrNotAPiece: a batch's id was passed where the id of a piece is
	// wanted (Ack, Nack, Heartbeat take Message.BatchID, the piece the
	// messages were handed out in).
	ErrNotAPiece = errors.New("pgque: a batch id, not a piece id") // PQ027
	// ErrTakenOver: the batch the piece came from was taken over by another
	// worker (this worker's lease ran out): its messages are the other's
	// now, and nothing was acknowledged or nacked.
	ErrTakenOver = errors.New("pgque: batch taken over by another worker") // PQ028
	// ErrPermissionDenied: the session's role may not do this to the queue
	// (namespace grants, pgque.grant_access) or may not call the function.
	ErrPermissionDenied = errors.New("pgque: permission denied") // 42501
)

var sentinels = map[string]error{
	"PQ001": ErrQueueNotFound,
	"PQ002": ErrQueueExists,
	"PQ003": ErrConsumerNotFound,
	"PQ004": ErrBatchNotFound,
	"PQ005": ErrMessageNotFound,
	"PQ006": ErrInvalidArgument,
	"PQ007": ErrQueueHasConsumers,
	"PQ008": ErrDeadLetterNotFound,
	"PQ009": ErrWrongTransactionMode,
	"PQ010": ErrNotScheduled,
	"PQ015": ErrScheduleExists,
	"PQ016": ErrScheduleNotFound,
	"PQ025": ErrConsumerBusy,
	"PQ026": ErrWorkerBusy,
	"PQ027": ErrNotAPiece,
	"PQ028": ErrTakenOver,
	"42501": ErrPermissionDenied, // insufficient_privilege, PostgreSQL's own code
	// PostgreSQL's own codes for a value its text cannot hold: a NUL
	// character or invalid UTF-8 in a string (character_not_in_repertoire,
	// which PostgreSQL raises as "invalid byte sequence"), and \u0000 in a
	// jsonb (untranslatable_character).  The caller's value is at fault, as
	// with PQ006.
	"22021": ErrInvalidArgument,
	"22P05": ErrInvalidArgument,
}

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
	s, ok := sentinels[e.Code]
	return ok && s == target
}

// wrap gives err the operation's name, turning pgque's own SQLSTATEs into *Error.
func wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if _, ok := sentinels[pgErr.Code]; ok {
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
