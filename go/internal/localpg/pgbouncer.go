package localpg

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Bouncer is a PgBouncer in front of a Server, for tests of pgque behind a
// connection pooler.  Like the server it listens on 127.0.0.1 at a free
// port and runs as the server's unprivileged user when this process is
// root (PgBouncer refuses to run as root too).
type Bouncer struct {
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Dir holds its configuration and log; Stop removes it.
	Dir string

	cmd  *exec.Cmd
	done chan error
}

// BouncerOptions configures StartBouncer.
type BouncerOptions struct {
	// PoolMode is PgBouncer's pool_mode: "transaction" (the default here),
	// "session" or "statement".
	PoolMode string
	// PoolSize is default_pool_size, the server connections per user and
	// database (default 4): small, so that clients share them.
	PoolSize int
	// User is the role clients log in as, listed in PgBouncer's auth file
	// (default the superuser); the server must trust it over TCP
	// (Options.TrustTCP).
	User string
}

// StartBouncer starts Debian's pgbouncer (/usr/sbin/pgbouncer, else on
// PATH) in front of every database of s and waits until it accepts
// connections.
func (s *Server) StartBouncer(ctx context.Context, opts BouncerOptions) (_ *Bouncer, err error) {
	prog := "/usr/sbin/pgbouncer"
	if _, err := os.Stat(prog); err != nil {
		if prog, err = exec.LookPath("pgbouncer"); err != nil {
			return nil, errors.New("localpg: pgbouncer not found (Debian: apt-get install pgbouncer)")
		}
	}
	if opts.PoolMode == "" {
		opts.PoolMode = "transaction"
	}
	if opts.PoolSize == 0 {
		opts.PoolSize = 4
	}
	if opts.User == "" {
		opts.User = superuser
	}
	b := &Bouncer{done: make(chan error, 1)}
	if b.Dir, err = os.MkdirTemp("", "pgque-pgbouncer-"); err != nil {
		return nil, fmt.Errorf("localpg: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(b.Dir)
		}
	}()
	if b.Port, err = freePort(); err != nil {
		return nil, err
	}
	// auth_type trust: the server authenticates (it trusts 127.0.0.1);
	// PgBouncer still wants the user in its auth file.
	conf := fmt.Sprintf(`[databases]
* = host=127.0.0.1 port=%d

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = %d
unix_socket_dir =
auth_type = trust
auth_file = %s
pool_mode = %s
default_pool_size = %d
max_client_conn = 500
server_round_robin = 0
logfile = %s
pidfile = %s
`, s.Port, b.Port, filepath.Join(b.Dir, "userlist.txt"), opts.PoolMode, opts.PoolSize,
		filepath.Join(b.Dir, "pgbouncer.log"), filepath.Join(b.Dir, "pgbouncer.pid"))
	files := map[string]string{
		"pgbouncer.ini": conf,
		"userlist.txt":  strconv.Quote(opts.User) + ` ""` + "\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(b.Dir, name), []byte(text), 0o600); err != nil {
			return nil, fmt.Errorf("localpg: %w", err)
		}
	}
	if err := s.chown(b.Dir); err != nil {
		return nil, err
	}
	b.cmd = exec.Command(prog, filepath.Join(b.Dir, "pgbouncer.ini"))
	b.cmd.Dir = "/"
	b.cmd.Env = cleanEnv()
	if s.cred != nil {
		b.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred}
	}
	var out strings.Builder
	b.cmd.Stdout, b.cmd.Stderr = &out, &out
	if err := b.cmd.Start(); err != nil {
		return nil, fmt.Errorf("localpg: pgbouncer: %w", err)
	}
	go func() { b.done <- b.cmd.Wait() }()
	// Nothing tells when it listens but the port itself.
	deadline := time.Now().Add(30 * time.Second)
	for {
		d := net.Dialer{Timeout: time.Second}
		c, derr := d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(b.Port)))
		if derr == nil {
			c.Close()
			return b, nil
		}
		select {
		case werr := <-b.done:
			return nil, fmt.Errorf("localpg: pgbouncer exited: %v\n%s%s", werr, out.String(), b.logTail())
		case <-ctx.Done():
			b.Stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.Stop()
			return nil, fmt.Errorf("localpg: pgbouncer did not listen on port %d within 30 s\n%s", b.Port, b.logTail())
		}
	}
}

// DSN is the connection string of database db through the bouncer, as
// user (the superuser when ""), with extra key=value parameters.
func (b *Bouncer) DSN(db, user string, extra ...string) string {
	if user == "" {
		user = superuser
	}
	return strings.Join(append([]string{"host=127.0.0.1", "port=" + strconv.Itoa(b.Port),
		"dbname=" + db, "user=" + user, "sslmode=disable"}, extra...), " ")
}

// Stop stops the bouncer (SIGTERM, then SIGKILL after 10 s) and removes
// its directory.
func (b *Bouncer) Stop() error {
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.done:
	case <-time.After(10 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.done
	}
	return os.RemoveAll(b.Dir)
}

// logTail returns the end of the bouncer's log, for error messages.
func (b *Bouncer) logTail() string { return fileTail(filepath.Join(b.Dir, "pgbouncer.log")) }
