package localpg

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A row committed on the primary is on its synchronous standby when the
// commit returns; once promoted, the standby takes writes and no longer
// waits for a standby of its own.  Both ways of taking the base backup:
// pg_basebackup, and the copy for server builds without it.
func TestStandbyPromote(t *testing.T) {
	for _, tc := range []struct {
		name        string
		trust, copy bool
	}{
		{"default/password", false, false},
		{"copy/trust", true, true},
	} {
		trust := tc.trust
		t.Run(tc.name, func(t *testing.T) {
			copyBackupOnly = tc.copy
			defer func() { copyBackupOnly = false }()
			ctx := context.Background()
			primary, err := Start(ctx, Options{TrustTCP: trust})
			if err != nil {
				t.Fatal(err)
			}
			defer primary.Stop()
			standby, err := primary.StartStandby(ctx, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if err := standby.Stop(); err != nil {
					t.Error(err)
				}
				if _, err := os.Stat(standby.Dir); !os.IsNotExist(err) {
					t.Errorf("standby directory %s left after Stop (%v)", standby.Dir, err)
				}
			}()
			if !standby.Throwaway || standby.Port == primary.Port || standby.Dir == primary.Dir {
				t.Errorf("standby: Throwaway %v, port %d (primary %d), dir %s", standby.Throwaway, standby.Port, primary.Port, standby.Dir)
			}
			if got := query(t, primary.DSN, "SHOW synchronous_standby_names"); got != StandbyName {
				t.Errorf("primary synchronous_standby_names = %q, want %q", got, StandbyName)
			}
			if got := query(t, standby.DSN, "SELECT pg_is_in_recovery()::text"); got != "true" {
				t.Errorf("standby in recovery: %s", got)
			}
			if err := execSQL(primary.DSN, "CREATE TABLE t AS SELECT 42 AS v"); err != nil {
				t.Fatal(err)
			}
			// Synchronous commit waits for the standby's flush, not its
			// replay: wait for replay of what the primary has written.
			lsn := query(t, primary.DSN, "SELECT pg_current_wal_lsn()::text")
			pollUntil(t, "standby replay", func() bool {
				return query(t, standby.DSN, "SELECT (pg_last_wal_replay_lsn() >= '"+lsn+"')::text") == "true"
			})
			if got := query(t, standby.DSN, "SELECT v::text FROM t"); got != "42" {
				t.Errorf("standby reads %q, want 42", got)
			}
			if err := execSQL(standby.DSN, "INSERT INTO t VALUES (1)"); err == nil || !strings.Contains(err.Error(), "read-only") {
				t.Errorf("write on the standby: %v, want a read-only error", err)
			}
			if b, err := os.ReadFile(filepath.Join(standby.Dir, "postgresql.auto.conf")); err != nil || !strings.Contains(string(b), "application_name="+StandbyName) {
				t.Errorf("standby's primary_conninfo lacks its application_name (%v):\n%s", err, b)
			}

			if err := primary.Crash(); err != nil {
				t.Fatal(err)
			}
			if err := standby.Promote(ctx); err != nil {
				t.Fatal(err)
			}
			if got := query(t, standby.DSN, "SELECT pg_is_in_recovery()::text"); got != "false" {
				t.Errorf("promoted standby in recovery: %s", got)
			}
			if err := execSQL(standby.DSN, "INSERT INTO t VALUES (1)"); err != nil {
				t.Fatalf("write after promotion: %v", err)
			}
			if got := query(t, standby.DSN, "SELECT count(*)::text FROM t"); got != "2" {
				t.Errorf("rows after promotion: %s, want 2", got)
			}
		})
	}
}

// pollUntil calls cond every few milliseconds until it holds, for up to
// 30 s: the servers signal nothing when replay advances.
func pollUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 30 s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling; see above
	}
}
