package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/localpg"
	"github.com/pgque/pgque/go/internal/server"
	"github.com/pgque/pgque/go/pgque"
)

type serveConfig struct {
	listen         string
	dataDir        string
	pgBin          string
	noTicker       bool
	leaderLease    time.Duration
	tokenFile      string
	insecureNoAuth bool
	allowOrigins   []string
	allowHosts     []string
	metricsAddr    string
	logs           logFlags
}

func newServeCmd(g *globals) *cobra.Command {
	var cfg serveConfig
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Serve pgque's HTTP API (REST/JSON, Server-Sent Events, metrics)",
		Long: `serve runs pgque's HTTP API (docs/http.md): queues, events, consumers and
dead letters as REST/JSON, a Server-Sent Events stream per consumer,
Prometheus metrics on /metrics and health checks on /healthz and /readyz.

With --dsn (or $PGQUE_DSN) it serves that database, installing pgque there if
it is missing.  Without one it runs a PostgreSQL server of its own, kept in
--data-dir (default $XDG_DATA_HOME/pgque or ~/.local/share/pgque, and
/var/lib/pgque when run as root, since the server then runs as an
unprivileged user that must reach the directory), and prints its connection
string.

It also runs a ticker (pgque's periodic work, see the Go SDK's Ticker) unless
--no-ticker: any number of processes may run one, and one works at a time
(the leader, holding a lease in the database that it renews every third of
--leader-lease; a standby takes over within about one lease when the leader
stops working).
SIGINT or SIGTERM shuts down gracefully: streams end, requests in flight
finish, the ticker and the local server stop.

Authentication (docs/http.md): with --token-file (or $PGQUE_TOKEN_FILE)
every request needs a bearer token of the file, whose scopes (inspect, read,
write, admin, each on every queue or on some queues and namespaces) say what
it may do.  On a loopback address tokens are optional; on any other address
serve refuses to start without them, unless --insecure-no-auth.  Requests of
web pages of other origins are refused unless --allow-origin; on loopback,
requests for host names other than loopback ones are refused unless
--allow-host (against DNS rebinding).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("token-file") {
				cfg.tokenFile = os.Getenv("PGQUE_TOKEN_FILE")
			}
			log, err := cfg.logs.logger(cmd.ErrOrStderr(), slog.LevelInfo)
			if err != nil {
				return err
			}
			return runServe(cmd.Context(), log, g, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.listen, "listen", "127.0.0.1:8080", "address to serve HTTP on (host:port; port 0 picks a free one)")
	f.StringVar(&cfg.dataDir, "data-dir", "", "directory of the local PostgreSQL server, when no --dsn is given")
	addPGBinFlag(f, &cfg.pgBin, "the local server, when no --dsn is given")
	f.BoolVar(&cfg.noTicker, "no-ticker", false, "do not run a ticker (another process ticks the database)")
	f.DurationVar(&cfg.leaderLease, "leader-lease", pgque.DefaultLeaderLease,
		"how long the ticker's leadership lasts without a renewal (1ms..1h); a stalled leader is replaced within about this long")
	f.StringVar(&cfg.tokenFile, "token-file", "", "`FILE` of bearer tokens and their scopes, one a line (default $PGQUE_TOKEN_FILE)")
	f.BoolVar(&cfg.insecureNoAuth, "insecure-no-auth", false,
		"serve without tokens on an address beyond loopback: anyone who reaches it may do anything")
	f.StringSliceVar(&cfg.allowOrigins, "allow-origin", nil,
		"`ORIGIN` (https://app.example.com) whose web pages may call the API; repeatable")
	f.StringSliceVar(&cfg.allowHosts, "allow-host", nil,
		"`NAME` the Host header may give besides loopback ones; with it, only these (any port); repeatable")
	f.StringVar(&cfg.metricsAddr, "metrics-addr", "",
		"serve /metrics on this `ADDRESS` (host:port) instead, without a token, and not on --listen")
	cfg.logs.register(cmd)
	return cmd
}

func runServe(ctx context.Context, log *slog.Logger, g *globals, cfg serveConfig) error {
	dsn := g.dsn
	if cfg.leaderLease < time.Millisecond || cfg.leaderLease > time.Hour {
		return usageError{fmt.Errorf("--leader-lease %v is out of range: must be at least 1ms and at most 1h", cfg.leaderLease)}
	}
	if dsn != "" && (cfg.dataDir != "" || cfg.pgBin != "") {
		return usageError{errors.New("--data-dir and --pg-bin are for the local server; they do not go with --dsn")}
	}
	// Listening first: whether tokens are needed depends on the address.
	ln, opts, err := serveListeners(cfg, log)
	if err != nil {
		return err
	}
	defer ln.Close()
	if opts.MetricsListener != nil {
		defer opts.MetricsListener.Close()
	}
	if dsn == "" {
		dir := cfg.dataDir
		if dir == "" {
			var err error
			if dir, err = defaultDataDir(); err != nil {
				return err
			}
		}
		if err := prepareDataDir(dir, os.Geteuid() == 0); err != nil {
			return err
		}
		log.Info("pgque serve: starting PostgreSQL", "dir", dir)
		pg, err := localpg.Start(ctx, localpg.Options{Dir: dir, BinDir: cfg.pgBin})
		if err != nil {
			return err
		}
		defer func() {
			log.Info("pgque serve: stopping PostgreSQL")
			if err := pg.Stop(); err != nil {
				log.Error("pgque serve: stopping PostgreSQL failed", "err", err)
			}
		}()
		dsn = pg.DSN
		// The same port and DSN at every start of this data directory.
		log.Info("pgque serve: database", "dsn", dsn, "dsn_file", pg.DSNFile())
	}

	client, err := pgque.Connect(ctx, dsn, g.clientOptions()...)
	if err != nil {
		return err
	}
	defer client.Close()
	// Installing needs more rights than serving (see pgque.Install): only
	// when pgque is missing.
	switch err := client.CheckEngine(ctx); {
	case errors.Is(err, pgque.ErrNotInstalled):
		method, err := g.install(ctx, client)
		if err != nil {
			return err
		}
		log.Info("pgque serve: installed pgque", "method", method, "engine", pgque.EmbeddedEngine())
	case err != nil:
		return err
	default:
		log.Info("pgque serve: pgque is installed", "engine", pgque.EmbeddedEngine())
	}

	if !cfg.noTicker {
		opts.Ticker = client.NewTicker(pgque.WithTickerLogger(log), pgque.WithLeaderLease(cfg.leaderLease))
	}
	srv := server.New(client, opts)
	if opts.MetricsListener != nil {
		log.Info("pgque serve: metrics", "url", fmt.Sprintf("http://%s/metrics", opts.MetricsListener.Addr()))
	}
	log.Info("pgque serve: listening", "url", fmt.Sprintf("http://%s", ln.Addr()))
	err = srv.Serve(ctx, ln)
	log.Info("pgque serve: stopped")
	return err
}

// serveListeners opens --listen and --metrics-addr and sets the server's
// protections for them: tokens (required beyond loopback unless
// --insecure-no-auth), allowed origins, and the Host check (on loopback,
// loopback names and --allow-host only; elsewhere --allow-host if given).
func serveListeners(cfg serveConfig, log *slog.Logger) (net.Listener, server.Options, error) {
	opts := server.Options{Logger: log, AllowedOrigins: cfg.allowOrigins, AllowedHosts: cfg.allowHosts}
	if cfg.tokenFile != "" && cfg.insecureNoAuth {
		return nil, opts, usageError{errors.New("--insecure-no-auth does not go with --token-file (or $PGQUE_TOKEN_FILE)")}
	}
	if cfg.tokenFile != "" {
		ts, err := server.LoadTokens(cfg.tokenFile)
		if err != nil {
			return nil, opts, usageError{fmt.Errorf("--token-file: %w", err)}
		}
		opts.Tokens = ts
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		return nil, opts, fmt.Errorf("pgque serve: %w", err)
	}
	loopback := isLoopback(ln.Addr())
	if !loopback && opts.Tokens == nil && !cfg.insecureNoAuth {
		ln.Close()
		return nil, opts, usageError{fmt.Errorf("--listen %s reaches beyond this machine: give --token-file "+
			"(or $PGQUE_TOKEN_FILE), or --insecure-no-auth to serve without authentication", cfg.listen)}
	}
	opts.AnyHost = !loopback && len(cfg.allowHosts) == 0
	if cfg.metricsAddr != "" {
		if opts.MetricsListener, err = net.Listen("tcp", cfg.metricsAddr); err != nil {
			ln.Close()
			return nil, opts, fmt.Errorf("pgque serve: --metrics-addr: %w", err)
		}
	}
	switch {
	case opts.Tokens != nil:
		log.Info("pgque serve: requests need a token", "tokens", opts.Tokens.Len(), "file", cfg.tokenFile)
	case !loopback:
		log.Warn("pgque serve: serving WITHOUT authentication beyond loopback (--insecure-no-auth)", "listen", ln.Addr().String())
	}
	return ln, opts, nil
}

// isLoopback reports whether a listener's address is reachable from this
// machine only.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// defaultDataDir is where the local server lives without --data-dir.
func defaultDataDir() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/lib/pgque", nil
	}
	if d := os.Getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "pgque"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no --data-dir given and no home directory: %w", err)
	}
	return filepath.Join(home, ".local", "share", "pgque"), nil
}

// prepareDataDir makes sure that, when we are root, the unprivileged user
// running PostgreSQL will be able to reach dir: its missing parents are
// created world-searchable (localpg would make them private to root), and
// existing ones must be searchable by others.
func prepareDataDir(dir string, root bool) error {
	if !root {
		return nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	parent := filepath.Dir(abs)
	var missing []string
	for p := parent; ; p = filepath.Dir(p) {
		_, err := os.Stat(p)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || p == filepath.Dir(p) {
			return fmt.Errorf("--data-dir: %w", err)
		}
		missing = append(missing, p)
	}
	// One by one, and chmod: MkdirAll's mode is cut by the umask.
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("--data-dir: %w", err)
		}
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
	}
	for p := parent; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("--data-dir: %w", err)
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("--data-dir %s: as root, pgque runs PostgreSQL as an unprivileged user, "+
				"which cannot enter %s (mode %v); choose a directory such as /var/lib/pgque", abs, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}
