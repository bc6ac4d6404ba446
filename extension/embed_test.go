package extension

import (
	"regexp"
	"testing"
)

// The CLI prints EngineVersion as the engine's version: it must be found.
func TestEngineVersion(t *testing.T) {
	if v := EngineVersion(); !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(v) {
		t.Fatalf("EngineVersion() = %q, want a version such as 1.0.0 read from pgque.version()", v)
	}
}
