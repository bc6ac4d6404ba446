// Package errtable is pgque's one table of errors: for each SQLSTATE the
// engine raises (class PQ) or PostgreSQL raises that pgque gives a meaning
// to, and for each error the HTTP API answers on its own, the SDK's
// sentinel error, the HTTP API's code and status, and the CLI's exit
// status.  The SDK (package pgque), the HTTP server, the HTTP client
// (package pgquehttp) and the CLI derive their mappings from it, and its
// tests check the engine's sources and the user docs against it.
//
// It depends on the standard library alone, so that pgquehttp, which must
// not pull in pgx, can use it.
package errtable

import (
	"errors"
	"net/http"
)

// Sentinel is one of the SDK's sentinel errors.  Package pgque exports each
// under its Name; pgquehttp's errors match the same values.
type Sentinel struct {
	Name string // the exported Go name, "ErrQueueNotFound"
	msg  string
}

func (s *Sentinel) Error() string { return s.msg }

func sentinel(name, msg string) *Sentinel { return &Sentinel{Name: name, msg: msg} }

// The sentinel errors, one per meaning (several SQLSTATEs may share one).
var (
	ErrQueueNotFound        = sentinel("ErrQueueNotFound", "pgque: queue not found")
	ErrQueueExists          = sentinel("ErrQueueExists", "pgque: queue already exists")
	ErrConsumerNotFound     = sentinel("ErrConsumerNotFound", "pgque: consumer not subscribed")
	ErrBatchNotFound        = sentinel("ErrBatchNotFound", "pgque: batch not open")
	ErrMessageNotFound      = sentinel("ErrMessageNotFound", "pgque: message not in batch")
	ErrInvalidArgument      = sentinel("ErrInvalidArgument", "pgque: invalid argument")
	ErrQueueHasConsumers    = sentinel("ErrQueueHasConsumers", "pgque: queue has consumers")
	ErrDeadLetterNotFound   = sentinel("ErrDeadLetterNotFound", "pgque: dead letter not found")
	ErrWrongTransactionMode = sentinel("ErrWrongTransactionMode", "pgque: wrong transaction isolation level")
	ErrNotScheduled         = sentinel("ErrNotScheduled", "pgque: not a scheduled event")
	ErrScheduleExists       = sentinel("ErrScheduleExists", "pgque: schedule already exists")
	ErrScheduleNotFound     = sentinel("ErrScheduleNotFound", "pgque: schedule not found")
	ErrConsumerBusy         = sentinel("ErrConsumerBusy", "pgque: consumer has a batch of its own open")
	ErrWorkerBusy           = sentinel("ErrWorkerBusy", "pgque: worker holds a batch")
	ErrNotAPiece            = sentinel("ErrNotAPiece", "pgque: a batch id, not a piece id")
	ErrTakenOver            = sentinel("ErrTakenOver", "pgque: batch taken over by another worker")
	ErrPermissionDenied     = sentinel("ErrPermissionDenied", "pgque: permission denied")
	ErrNotInstalled         = sentinel("ErrNotInstalled", "pgque: not installed in this database")
)

// The HTTP API's error codes (pgquehttp exports each as Code...).
const (
	CodeQueueNotFound        = "queue_not_found"
	CodeQueueExists          = "queue_exists"
	CodeConsumerNotFound     = "consumer_not_found"
	CodeBatchNotFound        = "batch_not_found"
	CodeMessageNotFound      = "message_not_found"
	CodeInvalidArgument      = "invalid_argument"
	CodeQueueHasConsumers    = "queue_has_consumers"
	CodeDeadLetterNotFound   = "dead_letter_not_found"
	CodeWrongTransactionMode = "wrong_transaction_mode"
	CodeNotScheduled         = "not_scheduled"
	CodeScheduleExists       = "schedule_exists"
	CodeScheduleNotFound     = "schedule_not_found"
	CodeConsumerBusy         = "consumer_busy"
	CodeWorkerBusy           = "worker_busy"
	CodeNotAPiece            = "not_a_piece"
	CodeTakenOver            = "taken_over"
	CodeWorkerNotFound       = "worker_not_found"
	CodePermissionDenied     = "permission_denied"
	CodeNotInstalled         = "not_installed"
	CodeMalformedJSON        = "malformed_json"
	CodeBodyTooLarge         = "body_too_large"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeUnavailable          = "unavailable"
	CodeInternal             = "internal"
	CodeUnauthenticated      = "unauthenticated"
	CodeForbidden            = "forbidden"
	CodeUnsupportedMediaType = "unsupported_media_type"
)

// The CLI's exit statuses for errors.  Scripts rely on them.
const (
	ExitError    = 1 // anything without a status of its own: connection, server, I/O
	ExitUsage    = 2 // bad command line, or an argument the engine rejected
	ExitNotFound = 3
	ExitConflict = 4
	ExitDenied   = 5
)

// Internal is the SQLSTATE the engine raises and catches itself to undo a
// subtransaction's work; it never reaches a caller, so it has no entry.
const Internal = "PQ000"

// Entry is one error.
type Entry struct {
	// SQLState is the code the engine or PostgreSQL raises; empty for an
	// error the HTTP server answers without asking the database.
	SQLState string
	// Name is the short name: PostgreSQL's condition name for its own
	// codes, the API code's spelling for pgque's.
	Name string
	// Err is the SDK's sentinel error that matches it; nil for the HTTP
	// API's own errors.
	Err *Sentinel
	// Code and Status are the HTTP API's answer.
	Code   string
	Status int
	// Exit is the CLI's exit status; 0 for the HTTP API's own errors,
	// which the CLI never meets.
	Exit    int
	Meaning string
}

// Table is every error, the engine's in the order of their SQLSTATEs.
var Table = []Entry{
	{"PQ001", "queue_not_found", ErrQueueNotFound, CodeQueueNotFound, http.StatusNotFound, ExitNotFound,
		"no queue by that name"},
	{"PQ002", "queue_exists", ErrQueueExists, CodeQueueExists, http.StatusConflict, ExitConflict,
		"a queue by that name exists already"},
	{"PQ003", "consumer_not_found", ErrConsumerNotFound, CodeConsumerNotFound, http.StatusNotFound, ExitNotFound,
		"the consumer is not subscribed to the queue"},
	{"PQ004", "batch_not_found", ErrBatchNotFound, CodeBatchNotFound, http.StatusNotFound, ExitNotFound,
		"the batch is unknown or no longer open"},
	{"PQ005", "message_not_found", ErrMessageNotFound, CodeMessageNotFound, http.StatusNotFound, ExitNotFound,
		"the message is not in the piece or batch, or was acknowledged already"},
	{"PQ006", "invalid_argument", ErrInvalidArgument, CodeInvalidArgument, http.StatusBadRequest, ExitUsage,
		"a malformed name, a NULL where none is allowed, or a value outside its range"},
	{"PQ007", "queue_has_consumers", ErrQueueHasConsumers, CodeQueueHasConsumers, http.StatusConflict, ExitConflict,
		"the queue still has consumers"},
	{"PQ008", "dead_letter_not_found", ErrDeadLetterNotFound, CodeDeadLetterNotFound, http.StatusNotFound, ExitNotFound,
		"no dead letter by that id"},
	// The server runs its own transactions at READ COMMITTED: only a
	// database set to another default isolation makes it meet PQ009.
	{"PQ009", "wrong_transaction_mode", ErrWrongTransactionMode, CodeWrongTransactionMode, http.StatusInternalServerError, ExitError,
		"the call must run at READ COMMITTED"},
	{"PQ010", "not_scheduled", ErrNotScheduled, CodeNotScheduled, http.StatusNotFound, ExitNotFound,
		"the id is not a delayed event of the queue (or was done long ago)"},
	{"PQ015", "schedule_exists", ErrScheduleExists, CodeScheduleExists, http.StatusConflict, ExitConflict,
		"a schedule by that name exists already in the queue's namespace"},
	{"PQ016", "schedule_not_found", ErrScheduleNotFound, CodeScheduleNotFound, http.StatusNotFound, ExitNotFound,
		"no schedule by that name"},
	{"PQ025", "consumer_busy", ErrConsumerBusy, CodeConsumerBusy, http.StatusConflict, ExitConflict,
		"a plain reader and the cooperative workers of one consumer are in each other's way"},
	{"PQ026", "worker_busy", ErrWorkerBusy, CodeWorkerBusy, http.StatusConflict, ExitConflict,
		"the worker holds a batch"},
	{"PQ027", "not_a_piece", ErrNotAPiece, CodeNotAPiece, http.StatusBadRequest, ExitUsage,
		"the id of a whole batch where the id of a piece is wanted"},
	{"PQ028", "taken_over", ErrTakenOver, CodeTakenOver, http.StatusConflict, ExitConflict,
		"the piece's batch was taken over by another worker; nothing was acknowledged or nacked"},
	{"42501", "insufficient_privilege", ErrPermissionDenied, CodePermissionDenied, http.StatusForbidden, ExitDenied,
		"the role may not do this to the queue, or may not call the function"},
	{"22021", "character_not_in_repertoire", ErrInvalidArgument, CodeInvalidArgument, http.StatusBadRequest, ExitUsage,
		"a NUL character or invalid UTF-8 in a text value"},
	{"22P05", "untranslatable_character", ErrInvalidArgument, CodeInvalidArgument, http.StatusBadRequest, ExitUsage,
		`\u0000 in a jsonb value`},
	{"3F000", "invalid_schema_name", ErrNotInstalled, CodeNotInstalled, http.StatusServiceUnavailable, ExitError,
		"pgque is not installed in the database (schema pgque does not exist)"},

	{"", "worker_not_found", nil, CodeWorkerNotFound, http.StatusNotFound, 0,
		"the consumer has no worker by that name"},
	{"", "malformed_json", nil, CodeMalformedJSON, http.StatusBadRequest, 0,
		"the body is not the JSON expected"},
	{"", "body_too_large", nil, CodeBodyTooLarge, http.StatusRequestEntityTooLarge, 0,
		"the body is larger than the server accepts"},
	{"", "not_found", nil, CodeNotFound, http.StatusNotFound, 0,
		"no such endpoint"},
	{"", "method_not_allowed", nil, CodeMethodNotAllowed, http.StatusMethodNotAllowed, 0,
		"the path exists with other methods"},
	{"", "unavailable", nil, CodeUnavailable, http.StatusServiceUnavailable, 0,
		"the database is unreachable or did not answer in time, or the server is shutting down"},
	{"", "internal", nil, CodeInternal, http.StatusInternalServerError, 0,
		"anything else; the details go to the server's log"},
	{"", "unauthenticated", nil, CodeUnauthenticated, http.StatusUnauthorized, 0,
		"no token, or one the server does not have"},
	{"", "forbidden", nil, CodeForbidden, http.StatusForbidden, 0,
		"the token lacks the scope, or the request's Origin or Host is refused"},
	{"", "unsupported_media_type", nil, CodeUnsupportedMediaType, http.StatusUnsupportedMediaType, 0,
		"a body not declared as JSON"},
}

var (
	bySQLState = map[string]*Entry{}
	byCode     = map[string]*Entry{}
)

func init() {
	for i := range Table {
		e := &Table[i]
		if e.SQLState != "" {
			bySQLState[e.SQLState] = e
		}
		// The first entry of a code answers for it; the tests check that
		// entries sharing a code agree on status and sentinel.
		if _, ok := byCode[e.Code]; !ok {
			byCode[e.Code] = e
		}
	}
}

// BySQLState returns the entry of an SQLSTATE, or nil when pgque gives it
// no meaning.
func BySQLState(sqlstate string) *Entry { return bySQLState[sqlstate] }

// ByCode returns the first entry of an HTTP API error code, or nil.
func ByCode(code string) *Entry { return byCode[code] }

// ForError returns the first entry whose sentinel err matches (errors.Is),
// or nil.
func ForError(err error) *Entry {
	for i := range Table {
		if e := &Table[i]; e.Err != nil && errors.Is(err, e.Err) {
			return e
		}
	}
	return nil
}

// Status is the HTTP status of an API error code (500 for an unknown one).
func Status(code string) int {
	if e := byCode[code]; e != nil {
		return e.Status
	}
	return http.StatusInternalServerError
}
