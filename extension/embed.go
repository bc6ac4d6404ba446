// Package extension holds pgque's SQL engine, as shipped to PostgreSQL: the
// control file and the install script generated from src/ by make.  The Go
// installer (pgque.Install) applies it with CREATE EXTENSION where the server
// has the extension files, and as plain SQL where it does not.
package extension

import (
	_ "embed"
	"strings"
)

// Version is the version of the embedded engine (the extension's default_version).
const Version = "1.0"

//go:embed pgque--1.0.sql
var script string

// Control is the content of pgque.control.
//
//go:embed pgque.control
var Control string

// InstallSQL returns the engine's install script as plain SQL: the script of
// CREATE EXTENSION, without its psql guard line, preceded by CREATE SCHEMA
// (which CREATE EXTENSION does by itself).
func InstallSQL() string {
	var b strings.Builder
	b.WriteString("CREATE SCHEMA IF NOT EXISTS pgque;\n")
	for _, line := range strings.SplitAfter(script, "\n") {
		if strings.HasPrefix(line, `\echo `) {
			continue
		}
		b.WriteString(line)
	}
	return b.String()
}
