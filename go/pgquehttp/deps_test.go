package pgquehttp_test

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// goList runs `go list -deps` with format f for pkg.
func goList(t *testing.T, f, pkg string) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", f, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// A program that talks to pgque over HTTP does not link PostgreSQL's
// driver, the migrations, the embedded engine or the SDK; and the error
// table they share needs nothing but the standard library.
func TestDependencies(t *testing.T) {
	for _, dep := range goList(t, "{{.ImportPath}}", ".") {
		for _, banned := range []string{"github.com/jackc/pgx", "github.com/jackc/tern",
			"github.com/pgque/pgque/extension", "github.com/pgque/pgque/go/pgque"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("pgquehttp depends on %s", dep)
			}
		}
	}
	if deps := goList(t, "{{if not .Standard}}{{.ImportPath}}{{end}}", "../internal/errtable"); len(deps) != 1 {
		t.Errorf("errtable depends on %v beyond the standard library", deps[:len(deps)-1])
	}
}
