package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

func newMigrateCmd(g *globals) *cobra.Command {
	var sqlOnly bool
	cmd := &cobra.Command{
		Use:     "migrate",
		Aliases: []string{"install"},
		Short:   "Install pgque into the database, or bring it up to date",
		Long: `migrate installs pgque into the database of --dsn, or updates an existing
install to the engine this binary embeds; on an up-to-date database it changes
nothing.  It uses CREATE EXTENSION pgque when the server has pgque's extension
files (needs a superuser), and otherwise applies the embedded engine as plain
SQL (for managed PostgreSQL services without custom extensions).  An existing
install keeps its method.`,
		Args: noArgs,
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&sqlOnly, "sql", false, "install as plain SQL even where the server has the extension files")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx := cmd.Context()
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		var opts []pgque.InstallOption
		if sqlOnly {
			opts = append(opts, pgque.WithoutExtension())
		}
		method, err := g.install(ctx, client, opts...)
		if err != nil {
			return err
		}
		engine, err := client.InstalledEngine(ctx)
		if err != nil {
			return fmt.Errorf("installed, but: %w", err)
		}
		res := struct {
			Method  pgque.InstallMethod `json:"method"`
			Version string              `json:"version"`
			Build   string              `json:"build"`
		}{method, engine.Version, engine.ID}
		return out.bind(cmd).print(res, func(w io.Writer) {
			fmt.Fprintf(w, "pgque %s installed (as %s)\n", engine, method)
		})
	}
	return cmd
}

// deleted is the JSON of the commands whose HTTP requests (DELETE) answer
// without a body: whether there was something to delete, false only with
// --if-exists.
type deleted struct {
	Deleted bool `json:"deleted"`
}

func newQueuesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "queues",
		Short: "List the queues",
		Long: `queues lists every queue with its consumers, events sent since the last tick
(NEW), its rate over about the last minute, the time since its last tick,
pending retries and dead letters, whether it is paused ('pgque queue
pause'), and UNCLAIMED: events kept for the first consumer of a queue that
has none (its tables cannot rotate until one subscribes; 'pgque queue
config QUEUE keep_unclaimed=off' lets them go), and ERRORS: consecutive
failures of the queue's ticks, table switches or retry and delayed moves
(the other queues go on; --json shows the newest error, and the ticker's
log names it).  A TICK_LAG that keeps growing while NEW is above zero means
no ticker is running.  --json adds the
settings and the size of the queue's event tables.`,
		Args: noArgs,
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		qs, err := client.Queues(cmd.Context())
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Queues(qs), qs,
			"QUEUE\tCONSUMERS\tNEW\tEV/S\tTICK_LAG\tLAST_TICK\tRETRY_PENDING\tDEAD_LETTERS\tPAUSED\tUNCLAIMED\tERRORS",
			func(w io.Writer, q pgque.QueueInfo) {
				fmt.Fprintf(w, "%s\t%d\t%d\t%.1f\t%s\t%d\t%d\t%d\t%s\t%d\t%d\n", q.Name, q.Consumers, q.NewEvents,
					q.EventsPerSecond, fmtDuration(q.TickerLag), q.LastTickID, q.RetryPending, q.DeadLetters,
					yesNo(q.Paused), q.UnclaimedEvents, q.Errors)
			})
	}
	return cmd
}

func newQueueCmd(g *globals) *cobra.Command {
	return groupCmd("queue", "Create, drop, configure, pause and resume a queue",
		newQueueCreateCmd(g), newQueueDropCmd(g), newQueueConfigCmd(g),
		newQueuePauseCmd(g, true), newQueuePauseCmd(g, false))
}

// newQueuePauseCmd is `queue pause`, or `queue resume` when !pause.
func newQueuePauseCmd(g *globals, pause bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pause QUEUE",
		Short: "Stop handing out a queue's events to its consumers",
		Long: `pause stops the queue's consumers: they receive nothing until 'pgque queue
resume', while producers, ticks and maintenance go on and nothing sent is
lost.  What was received before can still be acknowledged.  It waits for
consumer calls in progress, so once it returns no consumer is handed
anything more.  Pausing a paused queue succeeds and changes nothing.`,
		Args: exactArgs(1),
	}
	done, unchanged, fn := "paused", "is paused already", (*pgque.Client).PauseQueue
	if !pause {
		cmd.Use, cmd.Short = "resume QUEUE", "Let the consumers of a paused queue receive again"
		cmd.Long = `resume lets the consumers of a paused queue receive again and wakes them.
Each continues where it stopped, then gets what was sent during the pause.
Resuming a queue that is not paused succeeds and changes nothing.`
		done, unchanged, fn = "resumed", "is not paused", (*pgque.Client).ResumeQueue
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		changed, err := fn(client, cmd.Context(), args[0])
		if err != nil {
			return err
		}
		return out.bind(cmd).print(pgquehttp.PauseResponse{Changed: changed}, func(w io.Writer) {
			if changed {
				fmt.Fprintf(w, "queue '%s' %s\n", args[0], done)
			} else {
				fmt.Fprintf(w, "queue '%s' %s\n", args[0], unchanged)
			}
		})
	}
	return cmd
}

func newQueueCreateCmd(g *globals) *cobra.Command {
	var ifNotExists bool
	cmd := &cobra.Command{
		Use:   "create QUEUE",
		Short: "Create a queue",
		Long: `create creates a queue with the default settings (see 'pgque queue config').
Queue names are 1 to 57 bytes of A-Z a-z 0-9 _ . - starting with a letter or
digit.`,
		Args: exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "succeed when the queue exists already")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		created, err := client.CreateQueue(cmd.Context(), args[0])
		if err != nil {
			return err
		}
		if !created && !ifNotExists {
			return conflict("queue '%s' already exists", args[0])
		}
		// As the HTTP API answers the creation: the queue.
		var body pgquehttp.Queue
		if out.json {
			q, err := client.Queue(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			body = wire.Queue(q)
		}
		return out.bind(cmd).print(body, func(w io.Writer) {
			if created {
				fmt.Fprintf(w, "queue '%s' created\n", args[0])
			} else {
				fmt.Fprintf(w, "queue '%s' exists already\n", args[0])
			}
		})
	}
	return cmd
}

func newQueueDropCmd(g *globals) *cobra.Command {
	var force, ifExists bool
	cmd := &cobra.Command{
		Use:   "drop QUEUE",
		Short: "Drop a queue with its events, retries and dead letters",
		Long: `drop drops a queue with everything in it.  It refuses (exit status 4) while
consumers are subscribed, unless --force, which unsubscribes them too.`,
		Args: exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&force, "force", false, "drop even while consumers are subscribed")
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed when there is no such queue")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		dropped := true
		if err := client.DropQueue(cmd.Context(), args[0], force); err != nil {
			if !ifExists || !errors.Is(err, pgque.ErrQueueNotFound) {
				return err
			}
			dropped = false
		}
		return out.bind(cmd).print(deleted{dropped}, func(w io.Writer) {
			if dropped {
				fmt.Fprintf(w, "queue '%s' dropped\n", args[0])
			} else {
				fmt.Fprintf(w, "queue '%s' does not exist\n", args[0])
			}
		})
	}
	return cmd
}

func newQueueConfigCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config QUEUE [KEY=VALUE ...]",
		Short: "Show a queue's settings, or change them",
		Long: `config without settings shows the queue's settings.  With KEY=VALUE
arguments it changes them, in the order given; on an error the settings
before it are changed and the ones after it are not.

Keys: ticker_max_count, ticker_max_lag, ticker_idle_period, rotation_period,
max_retries, retry_backoff_base, retry_backoff_cap, retry_jitter,
keep_unclaimed.  Integers for ticker_max_count and max_retries, a number
from 0 to 1 for retry_jitter, on or off for keep_unclaimed, PostgreSQL
intervals for the others ('500ms', '10 seconds', '2h').  See
docs/sql-reference.md, "Queue settings".

  pgque queue config orders max_retries=10 retry_backoff_base=30s`,
		Args: minArgs(1),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		queue := args[0]
		type setting struct{ key, value string }
		var set []setting
		for _, a := range args[1:] {
			k, v, ok := strings.Cut(a, "=")
			if !ok || strings.TrimSpace(k) == "" {
				return usageError{fmt.Errorf("setting %q is not KEY=VALUE", a)}
			}
			set = append(set, setting{strings.TrimSpace(k), strings.TrimSpace(v)})
		}
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		for _, s := range set {
			if err := client.SetQueueConfig(ctx, queue, s.key, s.value); err != nil {
				return err
			}
		}
		q, err := client.Queue(ctx, queue)
		if err != nil {
			return err
		}
		return out.bind(cmd).print(wire.Queue(q), func(w io.Writer) {
			fmt.Fprintln(w, "SETTING\tVALUE")
			fmt.Fprintf(w, "ticker_max_count\t%d\n", q.TickerMaxCount)
			fmt.Fprintf(w, "ticker_max_lag\t%s\n", fmtDuration(q.TickerMaxLag))
			fmt.Fprintf(w, "ticker_idle_period\t%s\n", fmtDuration(q.TickerIdlePeriod))
			fmt.Fprintf(w, "rotation_period\t%s\n", fmtDuration(q.RotationPeriod))
			fmt.Fprintf(w, "max_retries\t%d\n", q.MaxRetries)
			fmt.Fprintf(w, "retry_backoff_base\t%s\n", fmtDuration(q.RetryBackoffBase))
			fmt.Fprintf(w, "retry_backoff_cap\t%s\n", fmtDuration(q.RetryBackoffCap))
			fmt.Fprintf(w, "keep_unclaimed\t%s\n", yesNo(q.KeepUnclaimed))
		})
	}
	return cmd
}
