package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// apiError is an error the server answers with as it is: a bad request
// caught before reaching the database, or an engine answer (such as "queue
// exists") that is not raised as an error.
type apiError struct {
	status   int
	code     string
	sqlstate string
	msg      string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{status: http.StatusBadRequest, code: pgquehttp.CodeInvalidArgument, msg: fmt.Sprintf(format, args...)}
}

// engineErrors maps the SDK's sentinel errors to HTTP.
var engineErrors = []struct {
	err    error
	status int
	code   string
}{
	{pgque.ErrQueueNotFound, http.StatusNotFound, pgquehttp.CodeQueueNotFound},
	{pgque.ErrQueueExists, http.StatusConflict, pgquehttp.CodeQueueExists},
	{pgque.ErrConsumerNotFound, http.StatusNotFound, pgquehttp.CodeConsumerNotFound},
	{pgque.ErrBatchNotFound, http.StatusNotFound, pgquehttp.CodeBatchNotFound},
	{pgque.ErrMessageNotFound, http.StatusNotFound, pgquehttp.CodeMessageNotFound},
	{pgque.ErrInvalidArgument, http.StatusBadRequest, pgquehttp.CodeInvalidArgument},
	{pgque.ErrQueueHasConsumers, http.StatusConflict, pgquehttp.CodeQueueHasConsumers},
	{pgque.ErrDeadLetterNotFound, http.StatusNotFound, pgquehttp.CodeDeadLetterNotFound},
	{pgque.ErrScheduleExists, http.StatusConflict, pgquehttp.CodeScheduleExists},
	{pgque.ErrScheduleNotFound, http.StatusNotFound, pgquehttp.CodeScheduleNotFound},
	{pgque.ErrConsumerBusy, http.StatusConflict, pgquehttp.CodeConsumerBusy},
	{pgque.ErrWorkerBusy, http.StatusConflict, pgquehttp.CodeWorkerBusy},
	{pgque.ErrNotAPiece, http.StatusBadRequest, pgquehttp.CodeNotAPiece},
	{pgque.ErrTakenOver, http.StatusConflict, pgquehttp.CodeTakenOver},
	{pgque.ErrPermissionDenied, http.StatusForbidden, pgquehttp.CodePermissionDenied},
}

// describe turns err into the status and body to answer with, and reports
// whether it is the server's fault (to be logged).
func describe(err error) (int, pgquehttp.ErrorDetail, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, pgquehttp.ErrorDetail{Code: ae.code, Message: ae.msg, SQLState: ae.sqlstate}, false
	}
	var pqErr *pgque.Error
	hasState := errors.As(err, &pqErr)
	for _, e := range engineErrors {
		if !errors.Is(err, e.err) {
			continue
		}
		d := pgquehttp.ErrorDetail{Code: e.code, Message: err.Error()}
		if hasState {
			// The server's message names the value; the SDK's wrapping adds nothing for a client.
			d.Message, d.SQLState = pqErr.Err.Message, pqErr.Code
		}
		return e.status, d, false
	}
	var maxErr *http.MaxBytesError
	var connErr *pgconn.ConnectError
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && (pgErr.Code == "22021" || pgErr.Code == "22P05"):
		// A NUL character or invalid UTF-8 in a value: PostgreSQL's text cannot hold it.
		return http.StatusBadRequest, pgquehttp.ErrorDetail{Code: pgquehttp.CodeInvalidArgument,
			Message: "a value holds a NUL character or is not valid UTF-8: " + pgErr.Message, SQLState: pgErr.Code}, false
	case errors.As(err, &maxErr):
		return http.StatusRequestEntityTooLarge, pgquehttp.ErrorDetail{Code: pgquehttp.CodeBodyTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit)}, false
	case errors.Is(err, context.Canceled):
		// The client left (or the server shuts down): nobody reads the answer.
		return http.StatusServiceUnavailable, pgquehttp.ErrorDetail{Code: pgquehttp.CodeUnavailable,
			Message: "request cancelled"}, false
	case errors.As(err, &connErr), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, pgquehttp.ErrorDetail{Code: pgquehttp.CodeUnavailable,
			Message: "the database is unreachable or did not answer in time"}, true
	}
	d := pgquehttp.ErrorDetail{Code: pgquehttp.CodeInternal, Message: "internal error"}
	if hasState {
		d.SQLState = pqErr.Code
	}
	return http.StatusInternalServerError, d, true
}

// writeJSON answers with status and v as JSON.  It encodes v whole before
// answering, so that a value JSON cannot hold (a time past year 9999) is
// never answered by a partial or empty success: it returns the error, for
// the endpoint to answer 500 with.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("pgque serve: encoding the answer: %w", err)
	}
	writeBody(w, status, b)
	return nil
}

func writeBody(w http.ResponseWriter, status int, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	// The client may be gone; nothing to do about a failed write.
	_, _ = w.Write(append(b, '\n'))
}

// writeError answers with err, logging the errors that are the server's.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, d, ours := describe(err)
	if ours {
		s.log.Error("pgque serve: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="pgque"`)
	}
	// Strings only: it cannot fail.
	b, _ := json.Marshal(pgquehttp.ErrorBody{Error: d})
	writeBody(w, status, b)
}
