// Command pgque is pgque's command-line tool: it installs pgque, manages
// queues, consumers, workers, schedules and dead letters, sends and
// receives messages, runs the ticker, serves the HTTP API (serve), and has a
// demo and a benchmark.
// `pgque --help` lists the commands; docs/operations.md shows how they are
// used in production.
//
// The database is named by --dsn or $PGQUE_DSN (a PostgreSQL URL or
// key=value string).  Output is a table for people, or JSON with --json for
// scripts.  The exit status tells scripts what went wrong (see exitCode).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgque/pgque/go/pgque"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/pgque/pgque/extension"
)

// globals are the flags every command takes.
type globals struct {
	dsn       string
	directDSN string // --direct-dsn: the database itself, when dsn is a pooler's
}

func main() {
	// A reader that goes away (`pgque demo | head`) must not kill us before
	// we clean up (a demo's throwaway server, its queue): writes fail instead.
	signal.Ignore(syscall.SIGPIPE)
	// Ctrl-C or SIGTERM cancels the context: commands clean up and return.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Only the first is caught: while commands clean up, a second one kills at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	stop()
	if err != nil {
		code := exitCode(ctx, err)
		fmt.Fprintln(os.Stderr, "pgque:", errorMessage(ctx, err))
		if errors.As(err, new(usageError)) {
			// Not for a value the engine refused: the command line was fine.
			fmt.Fprintln(os.Stderr, "Run 'pgque --help' or 'pgque COMMAND --help' for usage.")
		}
		os.Exit(code)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "pgque",
		Short: "pgque: a zero-bloat queue inside PostgreSQL",
		Long: "pgque is a message and job queue that lives inside PostgreSQL.\n\n" +
			"Commands that need a database take it from --dsn, else $PGQUE_DSN.\n" +
			"Commands print a table, or JSON with --json.\n\n" + exitCodeHelp,
		SilenceUsage:  true, // usage on flag errors only, not on every failure
		SilenceErrors: true, // main prints the error
		Args:          noArgs,
		RunE:          func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// Not the flag's default: help would print it, password and all.
			if !cmd.Flags().Changed("dsn") {
				g.dsn = os.Getenv("PGQUE_DSN")
			}
			if !cmd.Flags().Changed("direct-dsn") {
				g.directDSN = os.Getenv("PGQUE_DIRECT_DSN")
			}
			if g.directDSN != "" && g.dsn == "" {
				return usageError{errors.New("--direct-dsn (or $PGQUE_DIRECT_DSN) goes with --dsn (or $PGQUE_DSN), the pooler's")}
			}
			return checkInput(cmd, args, g.dsn, g.directDSN)
		},
	}
	root.PersistentFlags().StringVar(&g.dsn, "dsn", "",
		"PostgreSQL connection string (URL or key=value); default $PGQUE_DSN")
	root.PersistentFlags().StringVar(&g.directDSN, "direct-dsn", "",
		"when --dsn is a transaction pooler's (PgBouncer): the database's own connection string, for listening, "+
			"the ticker and installing; default $PGQUE_DIRECT_DSN")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddGroup(
		&cobra.Group{ID: "setup", Title: "Setting up:"},
		&cobra.Group{ID: "messages", Title: "Messages:"},
		&cobra.Group{ID: "run", Title: "Running:"},
	)
	for _, c := range []*cobra.Command{newMigrateCmd(g), newQueuesCmd(g), newQueueCmd(g),
		newSubscribeCmd(g), newUnsubscribeCmd(g), newConsumersCmd(g), newWorkersCmd(g),
		newSchedulesCmd(g), newScheduleCmd(g)} {
		c.GroupID = "setup"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newSendCmd(g), newReceiveCmd(g), newPeekCmd(g), newAckCmd(g), newNackCmd(g), newJobCmd(g), newJobsCmd(g), newCancelCmd(g), newDLQCmd(g)} {
		c.GroupID = "messages"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newTickerCmd(g), newServeCmd(g), newDemoCmd(g), newBenchCmd(g)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	root.AddCommand(newVersionCmd(g))
	return root
}

// checkInput rejects, as usage errors, a command line no command could
// use: an argument or flag value that is not valid UTF-8 (PostgreSQL's text
// cannot hold it), and a malformed --dsn.  A command line cannot hold a
// NUL byte.
func checkInput(cmd *cobra.Command, args []string, dsn, directDSN string) error {
	for _, a := range args {
		if !utf8.ValidString(a) {
			return usageError{fmt.Errorf("argument %q is not valid UTF-8", a)}
		}
	}
	var bad error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if bad == nil && !utf8.ValidString(f.Value.String()) {
			bad = usageError{fmt.Errorf("--%s %q is not valid UTF-8", f.Name, f.Value.String())}
		}
	})
	if bad != nil {
		return bad
	}
	for _, d := range []struct{ flag, env, dsn string }{{"dsn", "PGQUE_DSN", dsn}, {"direct-dsn", "PGQUE_DIRECT_DSN", directDSN}} {
		if d.dsn == "" {
			continue
		}
		// pgx's message leaves the password out.
		if _, err := pgconn.ParseConfig(d.dsn); err != nil {
			return usageError{fmt.Errorf("invalid --%s (or $%s): %w", d.flag, d.env, err)}
		}
	}
	return nil
}

func newVersionCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this tool, of the engine it embeds, and of the database's",
		Long: `version prints the version of this tool (one number for the tool, the
Go module's release and the engine it embeds: what 'pgque migrate' installs,
pgque.version() of that engine), the build of that engine, the Go module
version it was built from ("(devel)" outside a tagged module), and the Go
toolchain and platform.  With --dsn or $PGQUE_DSN it also asks the database
for its pgque.version(), and warns on stderr when that differs from the
embedded engine's (or when the database cannot be reached or has no pgque);
the exit status stays 0.`,
		Args: noArgs,
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		embedded := pgque.EmbeddedEngine()
		v := struct {
			Version       string `json:"version"`
			Module        string `json:"module"`
			Engine        string `json:"engine"`
			EngineBuild   string `json:"engine_build"`
			Database      string `json:"database,omitempty"`
			DatabaseBuild string `json:"database_build,omitempty"`
			Go            string `json:"go"`
			OS            string `json:"os"`
			Arch          string `json:"arch"`
		}{Version: extension.Version, Module: "(devel)", Engine: embedded.Version, EngineBuild: embedded.ID,
			Go: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH}
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v.Module = bi.Main.Version
		}
		var warning string
		if g.dsn != "" {
			db, err := databaseVersion(cmd.Context(), g)
			switch {
			case err != nil:
				warning = fmt.Sprintf("warning: no version from the database: %s", errorMessage(cmd.Context(), err))
			default:
				v.Database, v.DatabaseBuild = db.Version, db.ID
				if err := pgque.EngineMismatch(db, embedded); err != nil {
					warning = "warning: " + errorMessage(cmd.Context(), err)
				}
			}
		}
		err := out.bind(cmd).print(v, func(w io.Writer) {
			fmt.Fprintf(w, "pgque %s, engine %s, module %s, %s %s/%s\n", v.Version, embedded, v.Module, v.Go, v.OS, v.Arch)
			if v.Database != "" {
				fmt.Fprintf(w, "database engine %s\n", pgque.Engine{Version: v.Database, ID: v.DatabaseBuild})
			}
		})
		if warning != "" {
			fmt.Fprintln(cmd.ErrOrStderr(), "pgque:", warning)
		}
		return err
	}
	return cmd
}

// databaseVersion asks the database for its engine, within a few seconds:
// version must answer even when the server does not.
func databaseVersion(ctx context.Context, g *globals) (pgque.Engine, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	client, err := g.connect(ctx)
	if err != nil {
		return pgque.Engine{}, err
	}
	defer client.Close()
	return client.InstalledEngine(ctx)
}
