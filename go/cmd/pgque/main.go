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
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/extension"
)

// globals are the flags every command takes.
type globals struct {
	dsn string
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
		if code == exitUsage {
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
		// Not the flag's default: help would print it, password and all.
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			if !cmd.Flags().Changed("dsn") {
				g.dsn = os.Getenv("PGQUE_DSN")
			}
		},
	}
	root.PersistentFlags().StringVar(&g.dsn, "dsn", "",
		"PostgreSQL connection string (URL or key=value); default $PGQUE_DSN")
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
	for _, c := range []*cobra.Command{newSendCmd(g), newReceiveCmd(g), newPeekCmd(g), newAckCmd(g), newNackCmd(g), newDLQCmd(g)} {
		c.GroupID = "messages"
		root.AddCommand(c)
	}
	for _, c := range []*cobra.Command{newTickerCmd(g), newServeCmd(g), newDemoCmd(g), newBenchCmd(g)} {
		c.GroupID = "run"
		root.AddCommand(c)
	}
	root.AddCommand(newVersionCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this tool and of the engine it embeds",
		Args:  noArgs,
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		v := struct {
			Version string `json:"version"`
			Engine  string `json:"engine"`
			Go      string `json:"go"`
			OS      string `json:"os"`
			Arch    string `json:"arch"`
		}{"(devel)", extension.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH}
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
			v.Version = bi.Main.Version
		}
		return out.bind(cmd).print(v, func(w io.Writer) {
			fmt.Fprintf(w, "pgque %s, engine %s, %s %s/%s\n", v.Version, v.Engine, v.Go, v.OS, v.Arch)
		})
	}
	return cmd
}
