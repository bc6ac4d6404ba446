// Package extension holds pgque's SQL engine, as shipped to PostgreSQL: the
// control file, the install script generated from src/ by make, the install
// scripts of earlier releases and the upgrade scripts between releases.  The
// Go installer (pgque.Install) applies it with CREATE EXTENSION where the
// server has the extension files, and as plain SQL migrations where it does
// not.
package extension

import (
	"embed"
	"fmt"
	"regexp"
	"strings"
)

// Control is the content of pgque.control.
//
//go:embed pgque.control
var Control string

//go:embed pgque--*.sql
var scripts embed.FS

// Version is the version of the embedded extension: the control file's
// default_version, what CREATE EXTENSION installs, what pgque.version()
// returns, and the release of this module.
var Version = regexp.MustCompile(`(?m)^default_version\s*=\s*'([^']+)'`).FindStringSubmatch(Control)[1]

// script is the install script of Version.
var script = mustRead("pgque--" + Version + ".sql")

func mustRead(name string) string {
	b, err := scripts.ReadFile(name)
	if err != nil {
		panic("pgque extension: " + err.Error())
	}
	return string(b)
}

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

// Migration is one step of the plain-SQL install: the install script of the
// first release, or an upgrade script to the next.
type Migration struct {
	Name string // "pgque 1.0.0", "pgque 1.0.0 to 1.1.0"
	SQL  string
}

// Migrations returns the plain-SQL install of Version as steps: the install
// script of the first release (preceded by CREATE SCHEMA, which CREATE
// EXTENSION does by itself), then the upgrade scripts from it, release by
// release, up to Version; each without its psql guard line.  A database
// installed this way keeps the number of steps it ran and later runs only
// the ones after, as ALTER EXTENSION UPDATE runs the upgrade scripts.
func Migrations() []Migration {
	first := FirstRelease
	ms := []Migration{{Name: "pgque " + first, SQL: "CREATE SCHEMA IF NOT EXISTS pgque;\n" + plain(mustRead("pgque--"+first+".sql"))}}
	for v := first; v != Version; {
		next := upgradeFrom(v)
		if next == "" {
			panic(fmt.Sprintf("pgque extension: no upgrade script from %s toward %s", v, Version))
		}
		ms = append(ms, Migration{Name: "pgque " + v + " to " + next, SQL: plain(mustRead("pgque--" + v + "--" + next + ".sql"))})
		v = next
	}
	return ms
}

// FirstRelease is the release the plain-SQL install starts from.
const FirstRelease = "1.0.0"

// upgradeFrom returns the version the upgrade script from v leads to, ""
// if there is none.
func upgradeFrom(v string) string {
	names, _ := scripts.ReadDir(".")
	for _, e := range names {
		if rest, ok := strings.CutPrefix(e.Name(), "pgque--"+v+"--"); ok {
			return strings.TrimSuffix(rest, ".sql")
		}
	}
	return ""
}

// plain drops a script's psql guard (the \echo line that stops psql).
func plain(script string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(script, "\n") {
		if !strings.HasPrefix(line, `\echo `) {
			b.WriteString(line)
		}
	}
	return b.String()
}
