package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// inCopy runs the test in a copy of the extension directory.
func inCopy(t *testing.T) {
	t.Helper()
	tmp := t.TempDir()
	if err := os.CopyFS(filepath.Join(tmp, dir), os.DirFS(filepath.Join("..", "..", dir))); err != nil {
		t.Fatal(err)
	}
	t.Chdir(tmp)
}

func appendTo(t *testing.T, path, text string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func wantError(t *testing.T, err error, part string) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), part) {
		t.Fatalf("run = %v, want an error with %q", err, part)
	}
}

func TestCommittedFilesAreCurrent(t *testing.T) {
	inCopy(t)
	if err := run(true); err != nil {
		t.Fatal(err)
	}
}

func TestSourceChangeNeedsMake(t *testing.T) {
	inCopy(t)
	appendTo(t, filepath.Join(dir, "src", "99_security.sql"), "\n-- a change\n")
	wantError(t, run(true), "out of date with its sources")
	if err := run(false); err != nil {
		t.Fatal(err)
	}
	if err := run(true); err != nil {
		t.Fatal(err)
	}
}

func TestReleasedScriptNeverChanges(t *testing.T) {
	inCopy(t)
	appendTo(t, filepath.Join(dir, "pgque--1.0.0.sql"), "\n-- a change\n")
	wantError(t, run(true), "released script pgque--1.0.0.sql was changed")
}

// Once the version being built is released, a change of the engine needs a
// new version (and an upgrade script to it).
func TestChangeAfterReleaseNeedsNewVersion(t *testing.T) {
	inCopy(t)
	v, err := controlVersion()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, scriptName(v)))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	appendTo(t, filepath.Join(dir, "releases.sha256"), hex.EncodeToString(sum[:])+"  "+scriptName(v)+"\n")
	if err := run(true); err != nil {
		t.Fatalf("released as it is: %v", err)
	}
	appendTo(t, filepath.Join(dir, "src", "99_security.sql"), "\n-- a change\n")
	wantError(t, run(false), "the engine changed after release "+v)
}

func TestNewVersionNeedsUpgradeScript(t *testing.T) {
	inCopy(t)
	ups, err := filepath.Glob(filepath.Join(dir, "upgrade", "*.sql"))
	if err != nil || len(ups) == 0 {
		t.Fatalf("no upgrade sources: %v", err)
	}
	for _, u := range ups {
		if err := os.Remove(u); err != nil {
			t.Fatal(err)
		}
	}
	wantError(t, run(false), "has no upgrade from release 1.0.0")
}

func TestEveryPublicFunctionHasAHeader(t *testing.T) {
	inCopy(t)
	appendTo(t, filepath.Join(dir, "src", "99_security.sql"),
		"\nCREATE FUNCTION pgque.undocumented(x int) RETURNS int LANGUAGE sql AS $$ SELECT x $$;\n")
	wantError(t, run(false), "public function pgque.undocumented has no header comment")
}

func TestArgTypes(t *testing.T) {
	for sig, want := range map[string]string{
		"(queue_name text, n int DEFAULT 100, OUT x int) RETURNS": "text, int",
		"(a text[], b numeric(10, 2) = 1, VARIADIC c text[])":     "text[], numeric(10, 2), VARIADIC text[]",
		"(text, text)": "text, text",
		"()":           "",
		"(s pgque.subscription, from_start boolean DEFAULT false) RETURNS": "pgque.subscription, boolean",
	} {
		if got, err := argTypes(sig); err != nil || got != want {
			t.Errorf("argTypes(%q) = %q, %v; want %q", sig, got, err, want)
		}
	}
}
