package extension

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The CLI prints EngineVersion as the engine's version: it must be found.
func TestEngineVersion(t *testing.T) {
	if v := EngineVersion(); !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		t.Fatalf("EngineVersion() = %q, want a version such as 1.0.0 read from pgque.version()", v)
	}
}

// EngineID must be the digest of the sources the script was generated from
// (make's rule), so that the installer's comparison means "same build".
func TestEngineID(t *testing.T) {
	files, err := filepath.Glob("src/*.sql")
	if err != nil || len(files) == 0 {
		t.Fatalf("no sources: %v", err)
	}
	h := sha256.New()
	for _, f := range files { // Glob sorts by bytes, as make's $(sort) does
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		h.Write(b)
	}
	want := hex.EncodeToString(h.Sum(nil))[:16]
	if got := EngineID(); got != want {
		t.Fatalf("EngineID() = %q, want %q (the digest of src/*.sql): run make", got, want)
	}
}

// One version number: the control file's, the engine's pgque.version(), and
// the newest entry of CHANGELOG.md (pgque version prints Version; its test
// checks that).
func TestOneVersion(t *testing.T) {
	if v := EngineVersion(); v != Version {
		t.Errorf("pgque.version() of the script is %q, pgque.control's default_version %q", v, Version)
	}
	log, err := os.ReadFile("../CHANGELOG.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^## (\S+)`).FindSubmatch(log)
	if m == nil || string(m[1]) != Version {
		t.Errorf("CHANGELOG.md's newest entry is %q, want %q", m, Version)
	}
}

// The plain-SQL install runs the first release and the upgrades after it,
// up to Version, each once.
func TestMigrations(t *testing.T) {
	ms := Migrations()
	if len(ms) == 0 || ms[0].Name != "pgque "+FirstRelease || !strings.Contains(ms[0].SQL, "SELECT '"+FirstRelease+"'") {
		t.Fatalf("first migration %+v, want the install of %s", ms[0].Name, FirstRelease)
	}
	last := ms[len(ms)-1]
	if !strings.HasSuffix(last.Name, " to "+Version) || !strings.Contains(last.SQL, "SELECT '"+EngineID()+"'") {
		t.Fatalf("last migration %q does not lead to %s (build %s)", last.Name, Version, EngineID())
	}
	for _, m := range ms {
		if strings.Contains(m.SQL, `\echo`) {
			t.Errorf("%s keeps its psql guard", m.Name)
		}
	}
}
