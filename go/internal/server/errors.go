package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/internal/errtable"
	"github.com/pgque/pgque/go/pgquehttp"
)

// apiError is an error the server answers with as it is: a bad request
// caught before reaching the database, or an engine answer (such as "queue
// exists") that is not raised as an error.  Its code gives its status (the
// error table, errtable).
type apiError struct {
	code     string
	sqlstate string
	msg      string
}

func (e *apiError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &apiError{code: pgquehttp.CodeInvalidArgument, msg: fmt.Sprintf(format, args...)}
}

// describe turns err into the status and body to answer with, and reports
// whether it is the server's fault (to be logged).
func describe(err error) (int, pgquehttp.ErrorDetail, bool) {
	var ae *apiError
	if errors.As(err, &ae) {
		return errtable.Status(ae.code), pgquehttp.ErrorDetail{Code: ae.code, Message: ae.msg, SQLState: ae.sqlstate}, false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		if e := errtable.BySQLState(pgErr.Code); e != nil {
			// The server's message names the value; the SDK's wrapping
			// adds nothing for a client.
			return e.Status, pgquehttp.ErrorDetail{Code: e.Code, Message: pgErr.Message, SQLState: pgErr.Code},
				e.Status >= http.StatusInternalServerError
		}
	}
	if e := errtable.ForError(err); e != nil {
		// The SDK's own check, before SQL.
		return e.Status, pgquehttp.ErrorDetail{Code: e.Code, Message: err.Error()}, e.Status >= http.StatusInternalServerError
	}
	var maxErr *http.MaxBytesError
	var connErr *pgconn.ConnectError
	switch {
	case errors.As(err, &maxErr):
		return errtable.Status(pgquehttp.CodeBodyTooLarge), pgquehttp.ErrorDetail{Code: pgquehttp.CodeBodyTooLarge,
			Message: fmt.Sprintf("request body is larger than %d bytes", maxErr.Limit)}, false
	case errors.Is(err, context.Canceled):
		// The client left (or the server shuts down): nobody reads the answer.
		return errtable.Status(pgquehttp.CodeUnavailable), pgquehttp.ErrorDetail{Code: pgquehttp.CodeUnavailable,
			Message: "request cancelled"}, false
	case errors.As(err, &connErr), errors.Is(err, context.DeadlineExceeded):
		return errtable.Status(pgquehttp.CodeUnavailable), pgquehttp.ErrorDetail{Code: pgquehttp.CodeUnavailable,
			Message: "the database is unreachable or did not answer in time"}, true
	}
	return errtable.Status(pgquehttp.CodeInternal), pgquehttp.ErrorDetail{Code: pgquehttp.CodeInternal, Message: "internal error"}, true
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
