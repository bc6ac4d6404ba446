package pgque

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// Server errors are told from connection errors however they are wrapped,
// and logged with their SQLSTATE first.
func TestErrorClasses(t *testing.T) {
	pg := func(code, msg string) error { return &pgconn.PgError{Code: code, Message: msg} }
	for _, tc := range []struct {
		name   string
		err    error
		conn   bool
		logged string
	}{
		{"engine error", wrap("pgque: nack", pg("PQ006", "pgque: invalid retry_after")), false, "x: PQ006 pgque: invalid retry_after"},
		{"disk full", &opError{"ticker()", pg("53100", "could not extend file")}, false, "x: 53100 could not extend file"},
		{"lock timeout", fmt.Errorf("maint: %w", pg("55P03", "canceling statement due to lock timeout")), false, "x: 55P03 canceling statement due to lock timeout"},
		{"permission", pg("42501", "permission denied for function ticker"), false, "x: 42501 permission denied for function ticker"},
		{"admin shutdown", pg("57P01", "terminating connection due to administrator command"), true, ""},
		{"crash shutdown", pg("57P02", "terminating connection because of crash of another server process"), true, ""},
		{"starting up", pg("57P03", "the database system is starting up"), true, ""},
		{"connection exception", pg("08006", "connection failure"), true, ""},
		{"too many connections", pg("53300", "sorry, too many clients already"), true, ""},
		{"refused", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, true, ""},
		{"eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true, ""},
	} {
		if got := connectionError(tc.err); got != tc.conn {
			t.Errorf("%s: connectionError = %v, want %v", tc.name, got, tc.conn)
		}
		if (serverError(tc.err) != nil) == tc.conn {
			t.Errorf("%s: serverError = %v", tc.name, serverError(tc.err))
		}
		if tc.logged != "" {
			if got := describe("x", tc.err); got != tc.logged {
				t.Errorf("%s: describe = %q, want %q", tc.name, got, tc.logged)
			}
		}
	}
	for _, err := range []error{nil, context.Canceled, fmt.Errorf("q: %w", context.DeadlineExceeded)} {
		if connectionError(err) {
			t.Errorf("connectionError(%v) = true", err)
		}
	}
}
