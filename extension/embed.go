// Package extension holds pgque's SQL engine, as shipped to PostgreSQL: the
// control file and the install script generated from src/ by make.  The Go
// installer (pgque.Install) applies it with CREATE EXTENSION where the server
// has the extension files, and as plain SQL where it does not.
package extension

import (
	_ "embed"
	"regexp"
	"strings"
)

// Version is the version of the embedded extension (its default_version,
// what CREATE EXTENSION and pgque's migrations record).
const Version = "1.0"

// constFunc finds the constant an SQL function of the script returns:
// pgque.version() and pgque.engine_id() are written that way.
func constFunc(name string) string {
	re := regexp.MustCompile(`(?m)^CREATE FUNCTION pgque\.` + name + `\(\) RETURNS text\s+` +
		`LANGUAGE sql IMMUTABLE AS \$\$ SELECT '([^']+)' \$\$;`)
	if m := re.FindStringSubmatch(script); m != nil {
		return m[1]
	}
	return ""
}

// EngineVersion is the version of the embedded engine: what pgque.version()
// returns once it is installed.  It is read from the script itself, so that
// the two cannot disagree; "" if the script has no such function.
func EngineVersion() string { return constFunc("version") }

// EngineID identifies this build of the embedded engine: what
// pgque.engine_id() returns once it is installed, a digest of the engine's
// source that make writes into the script.  Two builds of one version have
// different ids; "" if the script has no such function.
func EngineID() string { return constFunc("engine_id") }

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
