package extension

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"regexp"
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
