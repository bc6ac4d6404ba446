package localpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// StandbyName is the application_name a standby of StartStandby connects
// to its primary with, the name the primary's synchronous_standby_names
// gives.
const StandbyName = "localpg_standby"

// StartStandby starts a throwaway streaming standby of s (a base backup of
// it, taken with pg_basebackup -R, or where the server build has no
// pg_basebackup by copying the files as it would) and makes it s's synchronous standby: a
// commit on s returns only once the standby has it (synchronous_commit on,
// synchronous_standby_names = StandbyName), which is what a failover that
// loses nothing needs.  It returns when the standby streams synchronously.
// opts is as for Start, except that Dir must be empty (the standby's
// directory is new and removed by Stop), TrustTCP does not apply (the
// standby has s's authentication) and BinDir defaults to s's.
//
// s keeps waiting for a synchronous standby after this one stops; Promote
// it, or SetSynchronousStandby(ctx, "") on s, to go on.
func (s *Server) StartStandby(ctx context.Context, opts Options) (_ *Server, err error) {
	if opts.Dir != "" {
		return nil, errors.New("localpg: StartStandby: Options.Dir must be empty (a standby is throwaway)")
	}
	if opts.BinDir == "" {
		opts.BinDir = s.bin
	}
	u, err := url.Parse(s.DSN)
	if err != nil {
		return nil, fmt.Errorf("localpg: StartStandby: primary DSN: %w", err)
	}
	password, _ := u.User.Password()
	dir, err := os.MkdirTemp("", "pgque-localpg-standby-")
	if err != nil {
		return nil, fmt.Errorf("localpg: StartStandby: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	if err := s.chown(dir); err != nil {
		return nil, err
	}
	// The application_name goes into the primary_conninfo that -R writes,
	// so that the primary knows the standby by the name it waits for.
	conninfo := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s application_name=%s sslmode=disable",
		s.Port, superuser, password, StandbyName)
	if fi, serr := os.Stat(filepath.Join(opts.BinDir, "pg_basebackup")); serr == nil && !fi.IsDir() && !copyBackupOnly {
		// pg_basebackup must be of the standby's version, not older than s's.
		standbyBin := &Server{bin: opts.BinDir, cred: s.cred, Dir: s.Dir}
		err = standbyBin.run(ctx, "pg_basebackup", "-D", dir, "-d", conninfo, "-R", "-X", "stream", "-c", "fast")
	} else {
		err = s.copyBackup(ctx, dir, conninfo)
	}
	if err != nil {
		return nil, err
	}
	// The copy carries s's settings file (and so s's port, which Start
	// would try first) and s's log; the standby gets its own.
	for _, f := range []string{confFile, logFile, dsnFile} {
		if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("localpg: StartStandby: %w", err)
		}
	}
	// Once promoted, the standby must not wait for a standby of its own
	// that a setting copied from s (an earlier StartStandby's) names.
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, fmt.Errorf("localpg: StartStandby: %w", err)
	}
	_, err = fmt.Fprintln(f, "synchronous_standby_names = ''")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("localpg: StartStandby: %w", err)
	}

	opts.Dir = dir
	standby, err := Start(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("localpg: StartStandby: %w", err)
	}
	standby.Throwaway = true
	if err := os.Remove(standby.DSNFile()); err != nil {
		standby.Stop()
		return nil, fmt.Errorf("localpg: StartStandby: %w", err)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	if err := s.SetSynchronousStandby(ctx, StandbyName); err == nil {
		err = s.waitSync(ctx, timeout)
	}
	if err != nil {
		standby.Stop()
		return nil, err
	}
	return standby, nil
}

// copyBackupOnly makes StartStandby take its base backup by copying files
// even where pg_basebackup exists, so that the tests cover both ways.
var copyBackupOnly bool

// copyBackup takes a base backup of s into dir the way pg_basebackup -R
// does, for server builds that ship without it: files copied between
// pg_backup_start and pg_backup_stop, then the WAL they need, kept for the
// copy by a replication slot that the standby goes on to stream from.
// Torn pages of files copied while written are repaired by the WAL's full
// page images (full_page_writes is on).
func (s *Server) copyBackup(ctx context.Context, dir, conninfo string) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	slot := StandbyName + "_" + hex.EncodeToString(b[:])
	if _, err := conn.Exec(ctx, `SELECT pg_create_physical_replication_slot($1, true)`, slot); err != nil {
		return fmt.Errorf("localpg: base backup: replication slot: %w", err)
	}
	// A non-exclusive backup lasts as long as this session.
	if _, err := conn.Exec(ctx, `SELECT pg_backup_start('localpg standby', true)`); err != nil {
		return fmt.Errorf("localpg: base backup: pg_backup_start: %w", err)
	}
	copyErr := copyTree(s.Dir, dir, func(rel string, d fs.DirEntry) (copyIt, descend bool) {
		if d.IsDir() {
			// What pg_basebackup leaves empty: the WAL comes below, the rest is
			// the running server's own.
			switch rel {
			case "pg_wal", "pg_replslot", "pg_stat_tmp", "pg_dynshmem", "pg_notify", "pg_serial",
				"pg_snapshots", "pg_subtrans":
				return true, false
			}
			return true, true
		}
		switch rel {
		case "postmaster.pid", "postmaster.opts", "backup_label", "tablespace_map", "standby.signal", "recovery.signal":
			return false, false
		}
		return true, false
	})
	var label, spcmap string
	if err := conn.QueryRow(ctx, `SELECT labelfile, coalesce(spcmapfile, '') FROM pg_backup_stop(false)`).Scan(&label, &spcmap); err != nil {
		return fmt.Errorf("localpg: base backup: pg_backup_stop: %w", err)
	}
	if copyErr != nil {
		return copyErr
	}
	if err := os.WriteFile(filepath.Join(dir, "backup_label"), []byte(label), 0o600); err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	if spcmap != "" {
		if err := os.WriteFile(filepath.Join(dir, "tablespace_map"), []byte(spcmap), 0o600); err != nil {
			return fmt.Errorf("localpg: base backup: %w", err)
		}
	}
	// The WAL from the backup's start on: the slot kept every segment.
	err = copyTree(filepath.Join(s.Dir, "pg_wal"), filepath.Join(dir, "pg_wal"), func(rel string, d fs.DirEntry) (bool, bool) {
		if d.IsDir() {
			return rel == "archive_status", false
		}
		return true, false
	})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "standby.signal"), nil, 0o600); err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(dir, "postgresql.auto.conf"), os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	_, err = fmt.Fprintf(f, "primary_conninfo = %s\nprimary_slot_name = %s\n", quoteLiteral(conninfo), quoteLiteral(slot))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	return nil
}

// copyTree copies the directory src into dst (which exists), the entries
// pick says to: copyIt for a directory makes it, descend copies its
// contents.  Files that vanish while it runs (a server's temporary ones)
// are passed over.
func copyTree(src, dst string, pick func(rel string, d fs.DirEntry) (copyIt, descend bool)) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if p == src {
			return err
		}
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("localpg: base backup: %w", err)
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return fmt.Errorf("localpg: base backup: %w", err)
		}
		copyIt, descend := pick(rel, d)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			if copyIt {
				if err := os.Mkdir(target, 0o700); err != nil {
					return fmt.Errorf("localpg: base backup: %w", err)
				}
			}
			if !copyIt || !descend {
				return filepath.SkipDir
			}
			return nil
		}
		if !copyIt || !d.Type().IsRegular() {
			return nil
		}
		return copyFile(p, target)
	})
}

// copyFile copies the regular file src to dst; a src gone already is not
// an error.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("localpg: base backup: %w", err)
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("localpg: base backup: %s: %w", src, err)
	}
	return nil
}

// SetSynchronousStandby sets s's synchronous_standby_names to name (""
// makes replication asynchronous) and reloads its configuration.  The
// setting is kept across restarts (ALTER SYSTEM).
func (s *Server) SetSynchronousStandby(ctx context.Context, name string) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return fmt.Errorf("localpg: synchronous standby: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER SYSTEM takes no parameters.
	if _, err := conn.Exec(ctx, "ALTER SYSTEM SET synchronous_standby_names = "+quoteLiteral(name)); err != nil {
		return fmt.Errorf("localpg: synchronous standby: %w", err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("localpg: synchronous standby: reload: %w", err)
	}
	return nil
}

// waitSync waits until s streams to a standby named StandbyName
// synchronously.
func (s *Server) waitSync(ctx context.Context, timeout time.Duration) error {
	conn, err := pgx.Connect(ctx, s.DSN)
	if err != nil {
		return fmt.Errorf("localpg: standby: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	deadline := time.Now().Add(timeout)
	for {
		var n int
		err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication
			WHERE application_name = $1 AND sync_state = 'sync' AND state = 'streaming'`, StandbyName).Scan(&n)
		if err != nil {
			return fmt.Errorf("localpg: standby: pg_stat_replication: %w", err)
		}
		if n > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("localpg: standby not streaming synchronously after %v\nprimary log (end):\n%s", timeout, s.logTail())
		}
		// The server signals nothing when a standby's state changes.
		select {
		case <-ctx.Done():
			return fmt.Errorf("localpg: standby: %w", ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Promote makes a standby a primary (pg_ctl promote) and waits until it
// accepts writes.
func (s *Server) Promote(ctx context.Context) error {
	if err := s.run(ctx, "pg_ctl", "promote", "-D", s.Dir, "-w", "-t", "60"); err != nil {
		return fmt.Errorf("%w\nserver log (end):\n%s", err, s.logTail())
	}
	return nil
}

// quoteLiteral quotes s as an SQL string literal.
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
