package main

import (
	"errors"

	"github.com/spf13/pflag"
)

// addPGBinFlag adds --pg-bin to a command that may start a PostgreSQL
// server of its own: the one flag text for demo, bench and serve.
func addPGBinFlag(f *pflag.FlagSet, dir *string, server string) {
	f.StringVar(dir, "pg-bin", "", "`DIR` of initdb, pg_ctl and postgres (any of PostgreSQL 15 to 18) for "+server+
		" (default: $PGQUE_PG_BIN, else initdb's directory on PATH, else the newest /usr/lib/postgresql/*/bin)")
}

// pgBinWithDSN refuses --pg-bin beside --dsn: a command given a database
// starts no server of its own.
func pgBinWithDSN(dsn, pgBin string) error {
	if dsn != "" && pgBin != "" {
		return usageError{errors.New("--pg-bin is for the throwaway server; it does not go with --dsn")}
	}
	return nil
}
