package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/extension"
	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

// emptyDatabase returns a pool on a fresh database without pgque.  The
// test server installs pgque in every database it makes, so it is removed
// here as a user would uninstall it (the cluster-wide roles stay).
func emptyDatabase(t *testing.T) *pgxpool.Pool {
	t.Helper()
	pool := srv.NewPool(t)
	uninstall(t, pool)
	return pool
}

// uninstall removes pgque from the pool's database.
func uninstall(t *testing.T, pool *pgxpool.Pool) {
	t.Helper()
	for _, sql := range []string{`DROP EXTENSION IF EXISTS pgque`, `DROP SCHEMA IF EXISTS pgque CASCADE`} {
		if _, err := pool.Exec(context.Background(), sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
}

// installState reports whether the database has the pgque extension, the
// plain-SQL install's version table, and the pgque roles.
func installState(t *testing.T, pool *pgxpool.Pool) (extVersion *string, versionTable, roles bool) {
	t.Helper()
	err := pool.QueryRow(context.Background(), `
		SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pgque'),
		       to_regclass('pgque.schema_version') IS NOT NULL,
		       (SELECT count(*) = 3 FROM pg_roles WHERE rolname IN ('pgque_reader', 'pgque_writer', 'pgque_admin'))`,
	).Scan(&extVersion, &versionTable, &roles)
	if err != nil {
		t.Fatal(err)
	}
	return extVersion, versionTable, roles
}

// checkWorks runs a queue through send, tick, receive and ack.
func checkWorks(t *testing.T, pool *pgxpool.Pool, queue string) {
	t.Helper()
	ctx := context.Background()
	client := pgque.New(pool)
	if _, err := client.CreateQueue(ctx, queue); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(ctx, queue, "c"); err != nil {
		t.Fatal(err)
	}
	id, err := client.Send(ctx, queue, pgque.Event{Type: "t", Payload: map[string]int{"n": 1}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, queue); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, queue, "c", 10)
	if err != nil || len(msgs) != 1 || msgs[0].MsgID != id || string(msgs[0].Payload) != `{"n":1}` {
		t.Fatalf("receive = %+v, %v; want event %d", msgs, err, id)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
}

func TestInstallExtension(t *testing.T) {
	ctx := context.Background()
	pool := emptyDatabase(t)
	var available bool
	if err := pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgque')`).Scan(&available); err != nil {
		t.Fatal(err)
	}
	if !available {
		t.Fatal("the test server has no pgque extension files; run the tests with `make gotest`, which installs them")
	}
	for i := range 2 { // the second Install is a no-op
		m, err := pgque.Install(ctx, pool)
		if err != nil || m != pgque.InstalledExtension {
			t.Fatalf("Install #%d = %q, %v; want %q", i+1, m, err, pgque.InstalledExtension)
		}
		ext, versionTable, roles := installState(t, pool)
		if ext == nil || *ext != extension.Version || versionTable || !roles {
			t.Fatalf("after Install #%d: extension version %v, version table %v, roles %v; want %s, false, true",
				i+1, ext, versionTable, roles, extension.Version)
		}
		checkWorks(t, pool, fmt.Sprintf("q%d", i))
	}
}

func TestInstallSQL(t *testing.T) {
	ctx := context.Background()
	pool := emptyDatabase(t)
	for i, opts := range [][]pgque.InstallOption{
		{pgque.WithoutExtension()},
		{pgque.WithoutExtension()}, // a no-op
		nil,                        // an existing install keeps its method
	} {
		m, err := pgque.Install(ctx, pool, opts...)
		if err != nil || m != pgque.InstalledSQL {
			t.Fatalf("Install #%d = %q, %v; want %q", i+1, m, err, pgque.InstalledSQL)
		}
		ext, versionTable, roles := installState(t, pool)
		if ext != nil || !versionTable || !roles {
			t.Fatalf("after Install #%d: extension %v, version table %v, roles %v; want none, true, true",
				i+1, ext, versionTable, roles)
		}
		// Queues made before a repeated Install are still there.
		n, err := pgque.New(pool).Queues(ctx)
		if err != nil || len(n) != i {
			t.Fatalf("after Install #%d: %d queues, %v; want %d", i+1, len(n), err, i)
		}
		checkWorks(t, pool, fmt.Sprintf("q%d", i))
	}
	var version string
	if err := pool.QueryRow(ctx, `SELECT pgque.version()`).Scan(&version); err != nil || version == "" {
		t.Fatalf("pgque.version() = %q, %v", version, err)
	}
}

// Several processes starting at once on a fresh database may all call
// Install; every call succeeds and pgque is installed once.
func TestInstallConcurrent(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []pgque.InstallOption
		want pgque.InstallMethod
	}{
		{"extension", nil, pgque.InstalledExtension},
		{"sql", []pgque.InstallOption{pgque.WithoutExtension()}, pgque.InstalledSQL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			pool := emptyDatabase(t)
			const installers = 4
			var wg sync.WaitGroup
			methods := make([]pgque.InstallMethod, installers)
			errs := make([]error, installers)
			start := make(chan struct{})
			for i := range installers {
				// A pool each, like separate processes.
				p := poolNamed(t, pool, fmt.Sprintf("installer-%d", i))
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					methods[i], errs[i] = pgque.Install(ctx, p, tc.opts...)
				}()
			}
			close(start)
			wg.Wait()
			for i := range installers {
				if errs[i] != nil || methods[i] != tc.want {
					t.Errorf("Install #%d = %q, %v; want %q", i+1, methods[i], errs[i], tc.want)
				}
			}
			ext, versionTable, _ := installState(t, pool)
			if (ext != nil) != (tc.want == pgque.InstalledExtension) || versionTable != (tc.want == pgque.InstalledSQL) {
				t.Errorf("extension %v, version table %v after installing by %s", ext, versionTable, tc.want)
			}
			if tc.want == pgque.InstalledSQL {
				var migrations int
				want := len(extension.Migrations()) // each step once, however many installers
				if err := pool.QueryRow(ctx, `SELECT version FROM pgque.schema_version`).Scan(&migrations); err != nil || migrations != want {
					t.Errorf("schema_version = %d, %v; want %d", migrations, err, want)
				}
			}
			checkWorks(t, pool, "q")
		})
	}
}

// On a server of its own: pgquetest installing as plain SQL, and installs
// into several databases at once while the cluster has no pgque roles yet.
func TestInstallFreshCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a second PostgreSQL server")
	}
	ctx := context.Background()
	s, err := pgquetest.Start(ctx, pgque.WithoutExtension())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Cleanup) // after the subtests' pools are closed

	t.Run("pgquetest without extension", func(t *testing.T) {
		pool := s.NewPool(t)
		ext, versionTable, roles := installState(t, pool)
		if ext != nil || !versionTable || !roles {
			t.Fatalf("extension %v, version table %v, roles %v; want none, true, true", ext, versionTable, roles)
		}
		checkWorks(t, pool, "q")
		uninstall(t, pool)
	})

	// The roles belong to the cluster, the install lock to one database:
	// concurrent installs race to create the roles, and must all succeed.
	// (Fresh databases each round: in warm ones the installs drift apart
	// and the race is rarely hit.)
	t.Run("databases installed at once", func(t *testing.T) {
		const rounds = 6
		for round := range rounds {
			opts, want := []pgque.InstallOption(nil), pgque.InstalledExtension
			if round%2 == 1 {
				opts, want = []pgque.InstallOption{pgque.WithoutExtension()}, pgque.InstalledSQL
			}
			pools := []*pgxpool.Pool{s.NewPool(t), s.NewPool(t)}
			for _, pool := range pools {
				uninstall(t, pool)
			}
			// Every other database of the cluster is without pgque too.
			if _, err := pools[0].Exec(ctx, `DROP ROLE pgque_admin, pgque_reader, pgque_writer`); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			methods := make([]pgque.InstallMethod, len(pools))
			errs := make([]error, len(pools))
			for i, pool := range pools {
				wg.Add(1)
				go func() {
					defer wg.Done()
					methods[i], errs[i] = pgque.Install(ctx, pool, opts...)
				}()
			}
			wg.Wait()
			for i, pool := range pools {
				if errs[i] != nil || methods[i] != want {
					t.Fatalf("round %d, database %d: Install = %q, %v; want %q", round, i, methods[i], errs[i], want)
				}
				if round == rounds-1 {
					checkWorks(t, pool, "q")
				}
				uninstall(t, pool)
			}
		}
	})
}

// staleServer starts a server whose pgque extension files are another
// build of this version (what an earlier `make install` leaves): a copy of
// the server programs, with share files linked from the real ones but for
// pgque's script, whose engine id is changed.  PostgreSQL finds its share
// directory relative to its programs, so the copy keeps their layout.
func staleServer(t *testing.T) (*localpg.Server, string) {
	t.Helper()
	bin, err := localpg.FindBinDir("")
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]string{}
	if _, err := os.Stat(filepath.Join(bin, "pg_config")); err == nil {
		for _, name := range []string{"sharedir", "pkglibdir"} {
			out, err := exec.Command(filepath.Join(bin, "pg_config"), "--"+name).Output()
			if err != nil {
				t.Fatalf("pg_config --%s: %v", name, err)
			}
			dirs[name] = strings.TrimSpace(string(out))
		}
	} else {
		// A relocatable build without pg_config (make test-matrix's 16 to
		// 18): its programs load their libraries from ../lib too, which
		// holds the modules' directory.
		dirs["sharedir"] = filepath.Join(filepath.Dir(bin), "share", "postgresql")
		dirs["pkglibdir"] = filepath.Join(filepath.Dir(bin), "lib")
	}
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil { // readable by the server's user when we are root
		t.Fatal(err)
	}
	at := func(p string) string { return filepath.Join(root, p) }
	mkdir := func(p string) {
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	link := func(from, to string) {
		if err := os.Symlink(from, to); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(at(bin))
	for _, prog := range []string{"initdb", "pg_ctl", "postgres"} {
		// Copied: PostgreSQL resolves a symlinked program to its real place.
		b, err := os.ReadFile(filepath.Join(bin, prog))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(at(filepath.Join(bin, prog)), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(filepath.Dir(at(dirs["pkglibdir"])))
	link(dirs["pkglibdir"], at(dirs["pkglibdir"]))
	share, ext := at(dirs["sharedir"]), at(filepath.Join(dirs["sharedir"], "extension"))
	mkdir(ext)
	for _, d := range []struct{ from, to string }{{dirs["sharedir"], share}, {filepath.Join(dirs["sharedir"], "extension"), ext}} {
		entries, err := os.ReadDir(d.from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if n := e.Name(); n != "extension" && !strings.HasPrefix(n, "pgque") {
				link(filepath.Join(d.from, n), filepath.Join(d.to, n))
			}
		}
	}
	script, err := os.ReadFile("../../extension/pgque--" + extension.Version + ".sql")
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.Replace(string(script), "SELECT '"+extension.EngineID()+"'", "SELECT 'feedfacefeedface'", 1)
	if stale == string(script) {
		t.Fatal("no engine id in the script")
	}
	script = []byte(stale)
	for name, b := range map[string][]byte{"pgque.control": []byte(extension.Control), "pgque--" + extension.Version + ".sql": script} {
		if err := os.WriteFile(filepath.Join(ext, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := localpg.Start(context.Background(), localpg.Options{BinDir: at(bin)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	return s, ext
}

// Stale extension files on the server: Install installs nothing and says
// which file; as plain SQL the program's own engine installs.
func TestInstallStaleExtensionFiles(t *testing.T) {
	ctx := context.Background()
	s, ext := staleServer(t)
	pool, err := pgxpool.New(ctx, s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	_, err = pgque.Install(ctx, pool)
	if !errors.Is(err, pgque.ErrEngineMismatch) ||
		!strings.Contains(err.Error(), filepath.Join(ext, "pgque--"+extension.Version+".sql")) ||
		!strings.Contains(err.Error(), "(build feedfacefeedface)") || !strings.Contains(err.Error(), "nothing was installed") {
		t.Fatalf("Install with stale extension files: %v; want ErrEngineMismatch naming the file", err)
	}
	if ext, versionTable, _ := installState(t, pool); ext != nil || versionTable {
		t.Fatalf("after a refused Install: extension %v, version table %v; want neither", ext, versionTable)
	}
	if err := pgque.New(pool).CheckEngine(ctx); !errors.Is(err, pgque.ErrNotInstalled) {
		t.Fatalf("CheckEngine after a refused Install: %v; want ErrNotInstalled", err)
	}
	if m, err := pgque.Install(ctx, pool, pgque.WithoutExtension()); err != nil || m != pgque.InstalledSQL {
		t.Fatalf("Install WithoutExtension = %q, %v", m, err)
	}
	if err := pgque.New(pool).CheckEngine(ctx); err != nil {
		t.Fatalf("CheckEngine after Install WithoutExtension: %v", err)
	}
	checkWorks(t, pool, "q")
}

// A database that keeps another build of this version (either method):
// Install and CheckEngine fail, naming both engines; InstalledEngine reads it.
func TestInstallOtherBuild(t *testing.T) {
	ctx := context.Background()
	for _, opts := range [][]pgque.InstallOption{nil, {pgque.WithoutExtension()}} {
		pool := emptyDatabase(t)
		client := pgque.New(pool)
		if _, err := client.InstalledEngine(ctx); !errors.Is(err, pgque.ErrNotInstalled) {
			t.Fatalf("InstalledEngine without pgque: %v; want ErrNotInstalled", err)
		}
		if _, err := pgque.Install(ctx, pool, opts...); err != nil {
			t.Fatal(err)
		}
		if e, err := client.InstalledEngine(ctx); err != nil || e != pgque.EmbeddedEngine() || e.ID == "" {
			t.Fatalf("InstalledEngine = %+v, %v; want %+v", e, err, pgque.EmbeddedEngine())
		}
		if _, err := pool.Exec(ctx, `CREATE OR REPLACE FUNCTION pgque.engine_id() RETURNS text
			LANGUAGE sql IMMUTABLE AS $$ SELECT 'feedfacefeedface' $$`); err != nil {
			t.Fatal(err)
		}
		want := "the database has pgque " + extension.EngineVersion() + " (build feedfacefeedface), this program's is " +
			pgque.EmbeddedEngine().String() + ": another build of the same version"
		if _, err := pgque.Install(ctx, pool, opts...); !errors.Is(err, pgque.ErrEngineMismatch) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Install over another build: %v; want ErrEngineMismatch with %q", err, want)
		}
		if err := client.CheckEngine(ctx); !errors.Is(err, pgque.ErrEngineMismatch) || !strings.Contains(err.Error(), want) {
			t.Fatalf("CheckEngine with another build: %v", err)
		}
		// A build older than engine_id() has none.
		if _, err := pool.Exec(ctx, `DO $$ BEGIN
				IF EXISTS (SELECT FROM pg_extension WHERE extname = 'pgque') THEN
					ALTER EXTENSION pgque DROP FUNCTION pgque.engine_id();
				END IF;
				DROP FUNCTION pgque.engine_id();
			END $$`); err != nil {
			t.Fatal(err)
		}
		if e, err := client.InstalledEngine(ctx); err != nil || e.ID != "" || e.Version != extension.EngineVersion() {
			t.Fatalf("InstalledEngine without engine_id(): %+v, %v", e, err)
		}
		if err := client.CheckEngine(ctx); !errors.Is(err, pgque.ErrEngineMismatch) || !strings.Contains(err.Error(), "(build unknown)") {
			t.Fatalf("CheckEngine without engine_id(): %v", err)
		}
	}
}
