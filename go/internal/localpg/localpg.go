// Package localpg runs a PostgreSQL server on this machine from the installed
// server programs (initdb, pg_ctl, postgres), for `pgque bench`, `pgque
// serve`, `pgque demo`, the test servers of pgquetest and the crash tests.
//
// A server is either throwaway (its cluster lives in a temporary directory
// that Stop removes) or persistent (in a directory the caller names; an
// existing cluster there is reused).  It listens on 127.0.0.1 at a free port
// (never 5432 unless asked) and on a unix socket inside its directory, logs to
// postgres.log there, and keeps PostgreSQL's durable defaults (fsync and
// synchronous_commit on): numbers measured on it are realistic.
//
// The superuser is "postgres" with a random password over TCP (scram-sha-256);
// the socket trusts whoever reaches it, and only the server's user (and root)
// can enter its directory.  The password is kept in the directory, so a
// persistent cluster can be started again.
//
// PostgreSQL refuses to run as root.  When this process runs as root, the
// server programs run as an unprivileged user (Options.User, else the
// `postgres` user if it exists, else a `pgque` system user created with
// useradd), which is handed the directory; it must be able to reach it (a
// persistent directory under /root will not do).
package localpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options configures Start.  The zero value starts a throwaway server.
type Options struct {
	// Dir is the cluster's directory (PGDATA).  Empty: a new temporary
	// directory, removed by Stop.  Otherwise the cluster is created there if
	// the directory is missing or empty, reused if it holds one, and kept.
	Dir string
	// Port to listen on at 127.0.0.1.  0: a free port.
	Port int
	// BinDir holds initdb, pg_ctl and postgres.  Empty: $PGQUE_PG_BIN
	// (EnvBinDir) when set, else the directory of initdb found on PATH, else
	// the newest /usr/lib/postgresql/*/bin.
	BinDir string
	// User runs the server when this process is root (see the package doc).
	User string
	// Settings are extra postgresql.conf settings (name → value), applied
	// after the defaults of this package (see Settings).
	Settings map[string]string
	// StartTimeout bounds the wait for the server to accept connections.
	// 0: 60 s.
	StartTimeout time.Duration
	// TrustTCP lets every role connect over TCP (127.0.0.1 only) without a
	// password, as a test server's roles made by tests need; by default
	// TCP needs a password (scram-sha-256).  It applies when the cluster is
	// created.
	TrustTCP bool
}

// Settings are the server settings localpg applies besides listen address,
// port and socket directory: PostgreSQL's durable defaults spelled out, and
// room for a benchmark (memory, fewer checkpoints).
var Settings = map[string]string{
	"fsync":              "on",
	"synchronous_commit": "on",
	"full_page_writes":   "on",
	"shared_buffers":     "256MB",
	"max_connections":    "100",
	"max_wal_size":       "2GB",
}

// Server is a running server.
type Server struct {
	// DSN connects to the postgres database as the superuser over TCP.
	DSN string
	// Dir is the cluster's directory (PGDATA); the log is Dir/postgres.log.
	Dir string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Throwaway says whether Stop removes Dir.
	Throwaway bool

	bin      string
	cred     *syscall.Credential
	stopOnce sync.Once
	stopErr  error
}

const (
	confFile  = "pgque_localpg.conf" // our settings, included from postgresql.conf
	pwFile    = "pgque_localpg.pw"   // the superuser's password
	logFile   = "postgres.log"
	dsnFile   = "pgque_localpg.dsn" // a kept cluster's DSN, for other programs
	superuser = "postgres"
)

// Start starts a server and waits until it accepts connections.
func Start(ctx context.Context, opts Options) (_ *Server, err error) {
	bin, err := FindBinDir(opts.BinDir)
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, Throwaway: opts.Dir == ""}
	if os.Geteuid() == 0 {
		if s.cred, err = runAs(opts.User); err != nil {
			return nil, err
		}
	}
	if s.Throwaway {
		if s.Dir, err = os.MkdirTemp("", "pgque-localpg-"); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
		defer func() {
			if err != nil {
				os.RemoveAll(s.Dir)
			}
		}()
	} else {
		if s.Dir, err = filepath.Abs(opts.Dir); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
		if err := os.MkdirAll(s.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
	}
	if err := s.chown(s.Dir); err != nil {
		return nil, err
	}

	password, err := s.initCluster(ctx, opts.TrustTCP)
	if err != nil {
		return nil, err
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	// A kept cluster listens on the port of its last start, so that its DSN
	// stays the same across restarts; a new one, on a free port.  A port
	// found free (or remembered) may be taken by the time the server binds
	// it: then try again with another free one.
	port := opts.Port
	if port == 0 && !s.Throwaway {
		port = s.lastPort()
	}
	for attempt := 1; ; attempt++ {
		s.Port = port
		if s.Port == 0 {
			if s.Port, err = freePort(); err != nil {
				return nil, err
			}
		}
		if err = s.writeConf(opts.Settings); err != nil {
			return nil, err
		}
		err = s.run(ctx, "pg_ctl", "start", "-D", s.Dir, "-l", filepath.Join(s.Dir, logFile),
			"-w", "-t", strconv.Itoa(int(timeout.Seconds()+0.5)))
		if err == nil || opts.Port != 0 || attempt == 3 || !strings.Contains(s.logTail(), "already in use") {
			break
		}
		port = 0
	}
	if err != nil {
		// pg_ctl may have given up waiting on a server that did start.
		_ = s.run(context.Background(), "pg_ctl", "stop", "-D", s.Dir, "-m", "immediate")
		return nil, fmt.Errorf("%w\nserver log (end):\n%s", err, s.logTail())
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(s.Port)),
		Path:     "/postgres",
		RawQuery: "sslmode=disable",
	}
	s.DSN = u.String()
	if !s.Throwaway {
		// For other programs (psql, pgque --dsn) to find; it holds the
		// password, so only the owner may read it.
		if err := os.WriteFile(s.DSNFile(), []byte(s.DSN+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
	}
	return s, nil
}

// DSNFile is where a kept cluster's DSN is written at every start.
func (s *Server) DSNFile() string { return filepath.Join(s.Dir, dsnFile) }

// lastPort returns the port the cluster's last start wrote into its
// settings file, 0 if there is none.
func (s *Server) lastPort() int {
	b, err := os.ReadFile(filepath.Join(s.Dir, confFile))
	if err != nil {
		return 0
	}
	m := regexp.MustCompile(`(?m)^port = '(\d+)'$`).FindSubmatch(b)
	if m == nil {
		return 0
	}
	p, err := strconv.Atoi(string(m[1]))
	if err != nil || p < 1 || p > 65535 {
		return 0
	}
	return p
}

// Stop stops the server (fast shutdown: open sessions are ended) and, for a
// throwaway server, removes its directory.  It is safe to call more than once.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		s.stopErr = s.run(ctx, "pg_ctl", "stop", "-D", s.Dir, "-m", "fast", "-w")
		if s.Throwaway {
			if err := os.RemoveAll(s.Dir); err != nil && s.stopErr == nil {
				s.stopErr = fmt.Errorf("localpg: %w", err)
			}
		}
	})
	return s.stopErr
}

// Crash stops the server the way a crash would (pg_ctl's immediate mode:
// no checkpoint, sessions cut off), so that the next start runs crash
// recovery.  The directory is kept; Restart starts the server again.
func (s *Server) Crash() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return s.run(ctx, "pg_ctl", "stop", "-D", s.Dir, "-m", "immediate", "-w")
}

// Restart starts a server stopped by Crash (or Stop, for a persistent
// one) on the same port and directory, and waits until it accepts
// connections.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.run(ctx, "pg_ctl", "start", "-D", s.Dir, "-l", filepath.Join(s.Dir, logFile), "-w", "-t", "60"); err != nil {
		return fmt.Errorf("%w\nserver log (end):\n%s", err, s.logTail())
	}
	return nil
}

// LogFile is the path of the server's log.
func (s *Server) LogFile() string { return filepath.Join(s.Dir, logFile) }

// initCluster runs initdb unless Dir holds a cluster, and returns the
// superuser's password.
func (s *Server) initCluster(ctx context.Context, trustTCP bool) (string, error) {
	hostAuth := "scram-sha-256"
	if trustTCP {
		hostAuth = "trust"
	}
	pwPath := filepath.Join(s.Dir, pwFile)
	if _, err := os.Stat(filepath.Join(s.Dir, "PG_VERSION")); err == nil {
		pw, err := os.ReadFile(pwPath)
		if err != nil {
			return "", fmt.Errorf("localpg: %s holds a cluster that localpg did not create: %w", s.Dir, err)
		}
		return strings.TrimSpace(string(pw)), nil
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	password := hex.EncodeToString(b[:])
	// initdb wants an empty directory, so the password file starts outside it.
	tmp, err := os.CreateTemp("", "pgque-localpg-pw-")
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.WriteString(password + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.chown(tmp.Name())
	}
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	if err := s.run(ctx, "initdb", "-D", s.Dir, "-U", superuser, "--pwfile", tmp.Name(),
		"--auth-host="+hostAuth, "--auth-local=trust", "--no-locale", "--encoding=UTF8", "--no-instructions"); err != nil {
		return "", err
	}
	if err := os.WriteFile(pwPath, []byte(password+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	if err := s.chown(pwPath); err != nil {
		return "", err
	}
	// Our settings live in a file of their own, rewritten at every start.
	f, err := os.OpenFile(filepath.Join(s.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by pgque's localpg.\ninclude_if_exists = '%s'\n", confFile)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("localpg: %w", err)
	}
	return password, nil
}

// writeConf writes the settings file for the next start.
func (s *Server) writeConf(extra map[string]string) error {
	set := map[string]string{
		"listen_addresses":        "127.0.0.1",
		"port":                    strconv.Itoa(s.Port),
		"unix_socket_directories": s.Dir,
	}
	// A unix socket path must fit in sockaddr_un (107 bytes); beyond that the
	// server listens on TCP only.
	if len(s.Dir)+len("/.s.PGSQL.65535.lock") > 107 {
		set["unix_socket_directories"] = ""
	}
	for k, v := range Settings {
		set[k] = v
	}
	for k, v := range extra {
		set[k] = v
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString("# Written by pgque's localpg at every start; edits are lost.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s = %s\n", k, quoteLiteral(set[k]))
	}
	path := filepath.Join(s.Dir, confFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return s.chown(path)
}

// run runs one of the server programs, as the server's user.
func (s *Server) run(ctx context.Context, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, filepath.Join(s.bin, prog), args...)
	cmd.Dir = "/" // the server's user may not be able to enter ours
	cmd.Env = cleanEnv()
	if s.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if s.cred != nil {
			msg += fmt.Sprintf("\n(ran as uid %d: that user must be able to reach %s)", s.cred.Uid, s.Dir)
		}
		return fmt.Errorf("localpg: %s %s: %w\n%s", prog, args[0], err, msg)
	}
	return nil
}

// logTail returns the end of the server log, for error messages.
func (s *Server) logTail() string { return fileTail(filepath.Join(s.Dir, logFile)) }

// fileTail returns the end of a log file, for error messages.
func fileTail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// chown hands path (recursively) to the server's user when running as root.
func (s *Server) chown(path string) error {
	if s.cred == nil {
		return nil
	}
	err := filepath.WalkDir(path, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, int(s.cred.Uid), int(s.cred.Gid))
	})
	if err != nil {
		return fmt.Errorf("localpg: %w", err)
	}
	return nil
}

// cleanEnv is our environment without the PG* variables, which would
// redirect the server programs (PGDATA, PGPORT, ...), and with a C locale.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") && !strings.HasPrefix(kv, "LC_") && !strings.HasPrefix(kv, "LANG=") {
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C")
}

// EnvBinDir names the environment variable that picks the server programs
// when Options.BinDir is empty: how the tests of every package, and
// programs that do not pass a directory, run on another PostgreSQL version.
const EnvBinDir = "PGQUE_PG_BIN"

// FindBinDir finds the directory of the server programs: dir itself when
// it has them, and when dir is empty the place Options.BinDir documents.
func FindBinDir(dir string) (string, error) {
	if dir == "" {
		dir = os.Getenv(EnvBinDir)
	}
	has := func(d string) bool {
		for _, p := range []string{"initdb", "pg_ctl", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, p)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if dir != "" {
		if !has(dir) {
			return "", fmt.Errorf("localpg: no initdb, pg_ctl and postgres in %s (from --pg-bin or $%s)", dir, EnvBinDir)
		}
		return dir, nil
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		// Resolve symlinks such as /usr/local/bin/initdb -> /usr/lib/postgresql/15/bin/initdb.
		if real, err := filepath.EvalSymlinks(p); err == nil && has(filepath.Dir(real)) {
			return filepath.Dir(real), nil
		}
		if has(filepath.Dir(p)) {
			return filepath.Dir(p), nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	best, bestV := "", -1.0
	for _, d := range dirs {
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(d)), 64)
		if err == nil && v > bestV && has(d) {
			best, bestV = d, v
		}
	}
	if best == "" {
		return "", errors.New("localpg: PostgreSQL server programs not found: need initdb, pg_ctl and postgres " +
			"on PATH or in /usr/lib/postgresql/*/bin (Debian: apt-get install postgresql)")
	}
	return best, nil
}

// runAs returns the credentials of the user that runs the server when we
// are root, creating a `pgque` system user if there is none to use.
func runAs(name string) (*syscall.Credential, error) {
	if name == "" {
		name = "postgres"
		if _, err := user.Lookup(name); err != nil {
			name = "pgque"
			if _, err := user.Lookup(name); err != nil {
				out, err := exec.Command("useradd", "--system", "--user-group", "--no-create-home",
					"--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", name).CombinedOutput()
				// A concurrent run may have created it first.
				if _, lerr := user.Lookup(name); lerr != nil {
					return nil, fmt.Errorf("localpg: PostgreSQL refuses to run as root, and creating user %q "+
						"to run it failed: %v: %s", name, err, strings.TrimSpace(string(out)))
				}
			}
		}
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("localpg: user to run PostgreSQL as: %w", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil || uid == 0 {
		return nil, fmt.Errorf("localpg: cannot run PostgreSQL as user %q (uid %s)", name, u.Uid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("localpg: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
