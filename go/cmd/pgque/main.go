// Command pgque is pgque's command-line tool.  For now it has two commands:
//
//	pgque bench     measure pgque against plain-SQL baselines (DESIGN.md §7)
//	pgque version   print the versions of this tool and of the engine it embeds
//
// The database is named by --dsn or $PGQUE_DSN (a PostgreSQL URL or
// key=value string).
package main

import (
	"context"
	"errors"
	"fmt"
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
	// Ctrl-C or SIGTERM cancels the context: commands clean up and return.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// Only the first is caught: while commands clean up, a second one kills at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRoot().ExecuteContext(ctx)
	stop()
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			err = errors.New("interrupted")
		}
		fmt.Fprintln(os.Stderr, "pgque:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "pgque",
		Short: "pgque: a zero-bloat queue inside PostgreSQL",
		Long: "pgque is a message and job queue that lives inside PostgreSQL.\n\n" +
			"Commands that need a database take it from --dsn, else $PGQUE_DSN.",
		SilenceUsage:  true, // usage on flag errors only, not on every failure
		SilenceErrors: true, // main prints the error
	}
	root.PersistentFlags().StringVar(&g.dsn, "dsn", os.Getenv("PGQUE_DSN"),
		"PostgreSQL connection string (URL or key=value); default $PGQUE_DSN")
	root.AddCommand(newBenchCmd(g), newVersionCmd())
	root.AddCommand(newServeCmd(g))
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the versions of this tool and of the engine it embeds",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			v := "(devel)"
			if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
				v = bi.Main.Version
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pgque %s, engine %s, %s %s/%s\n",
				v, extension.Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
