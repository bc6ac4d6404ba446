package pgque_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/extension"
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
	if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil || !ok {
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
				if err := pool.QueryRow(ctx, `SELECT version FROM pgque.schema_version`).Scan(&migrations); err != nil || migrations != 1 {
					t.Errorf("schema_version = %d, %v; want 1", migrations, err)
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
