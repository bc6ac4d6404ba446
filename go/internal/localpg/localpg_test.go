package localpg

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// query connects to dsn and returns the single text value of sql.
func query(t *testing.T, dsn, sql string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var v string
	if err := conn.QueryRow(ctx, sql).Scan(&v); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return v
}

// execSQL runs sql on dsn.
func execSQL(dsn, sql string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

func TestThrowaway(t *testing.T) {
	s, err := Start(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !s.Throwaway || s.Port == 0 || s.Port == 5432 {
		t.Errorf("Throwaway %v, Port %d", s.Throwaway, s.Port)
	}
	for setting, want := range map[string]string{
		"fsync":              "on",
		"synchronous_commit": "on",
		"shared_buffers":     "256MB",
		"max_connections":    "100",
		"listen_addresses":   "127.0.0.1",
	} {
		if got := query(t, s.DSN, "SHOW "+setting); got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	if got := query(t, s.DSN, "SELECT current_user"); got != "postgres" {
		t.Errorf("current_user = %q", got)
	}
	if _, err := os.Stat(s.LogFile()); err != nil {
		t.Error(err)
	}
	// The unix socket is in the cluster's directory.
	if _, err := os.Stat(filepath.Join(s.Dir, ".s.PGSQL."+strconv.Itoa(s.Port))); err != nil {
		t.Error(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(s.Dir); !os.IsNotExist(err) {
		t.Errorf("throwaway dir %s not removed: %v", s.Dir, err)
	}
	if err := s.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestPersistent(t *testing.T) {
	// Not t.TempDir(): as root the server's user must be able to reach the
	// cluster's directory, and t.TempDir's parent is private to us.
	parent, err := os.MkdirTemp("", "localpg-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(parent)
	if err := os.Chmod(parent, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "cluster")

	s, err := Start(context.Background(), Options{Dir: dir, Settings: map[string]string{"work_mem": "8MB"}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if s.Throwaway || s.Dir != dir {
		t.Errorf("Throwaway %v, Dir %q", s.Throwaway, s.Dir)
	}
	if got := query(t, s.DSN, "SHOW work_mem"); got != "8MB" {
		t.Errorf("work_mem = %q", got)
	}
	if err := execSQL(s.DSN, "CREATE TABLE kept AS SELECT 'still here'::text AS v"); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}

	// Started again, the cluster and its password are reused.
	s2, err := Start(context.Background(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Stop()
	if got := query(t, s2.DSN, "SELECT v FROM kept"); got != "still here" {
		t.Errorf("kept = %q", got)
	}
	if err := s2.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "PG_VERSION")); err != nil {
		t.Errorf("persistent cluster gone: %v", err)
	}
}

func TestFindBinDir(t *testing.T) {
	dir, err := FindBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := FindBinDir(dir); err != nil {
		t.Error(err)
	}
	if _, err := FindBinDir(t.TempDir()); err == nil {
		t.Error("FindBinDir of an empty dir: no error")
	}
}

// Crash cuts the server off without a checkpoint; Restart recovers it on
// the same port, with every committed row.
func TestCrashRestart(t *testing.T) {
	ctx := context.Background()
	s, err := Start(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE t AS SELECT generate_series(1, 1000) AS n`); err != nil {
		t.Fatal(err)
	}
	if err := s.Crash(); err != nil {
		t.Fatal(err)
	}
	if err := conn.Ping(ctx); err == nil {
		t.Fatal("a session survived Crash")
	}
	if err := execSQL(s.DSN, "SELECT 1"); err == nil {
		t.Fatal("the server accepts connections after Crash")
	}
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if got := query(t, s.DSN, "SELECT count(*)::text FROM t"); got != "1000" {
		t.Errorf("rows after the restart = %s, want 1000", got)
	}
	log, err := os.ReadFile(s.LogFile())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(log), "not properly shut down") {
		t.Errorf("the restart ran no crash recovery; log:\n%s", log)
	}
}
