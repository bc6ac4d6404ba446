package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/errtable"
	"github.com/pgque/pgque/go/pgque"
)

// Exit statuses.  Scripts rely on them: they are documented in `pgque
// --help` and docs/operations.md, and must not change.  The error table
// (errtable) gives each engine error's.
const (
	exitOK          = 0
	exitError       = errtable.ExitError
	exitUsage       = errtable.ExitUsage
	exitNotFound    = errtable.ExitNotFound
	exitConflict    = errtable.ExitConflict
	exitInterrupted = 130 // stopped by Ctrl-C or SIGTERM before it was done
)

const exitCodeHelp = `Exit status:
  0    success
  1    error (connection, server, I/O, pgque not installed in the database)
  2    usage error, or an argument the engine rejected (invalid name or
       value, the id of a whole batch where a piece's is wanted)
  3    not found: queue, consumer, batch, message, dead letter or schedule
  4    conflict: queue, subscription or schedule exists already, queue has
       consumers, consumer busy with a plain reader's batch (receive), worker
       holds a batch, or the batch was taken over by another worker (ack,
       nack: the receive's lease ran out)
  5    permission denied: the role may not do this to the queue
  130  interrupted before the command was done`

// usageError marks a bad command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// statusError is an outcome the engine reports as a result rather than an
// error (ack returning 0, subscribe of a consumer already subscribed), which
// the command turns into a failure with a status of its own.
type statusError struct {
	code int
	msg  string
}

func (e statusError) Error() string { return e.msg }

func notFound(format string, args ...any) error {
	return statusError{exitNotFound, fmt.Sprintf(format, args...)}
}

func conflict(format string, args ...any) error {
	return statusError{exitConflict, fmt.Sprintf(format, args...)}
}

// exitCode maps an error to the exit status; ctx is the command's context.
func exitCode(ctx context.Context, err error) int {
	var se statusError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &se):
		return se.code
	case errors.As(err, new(usageError)):
		return exitUsage
	}
	if e := errtable.ForError(err); e != nil {
		return e.Exit
	}
	switch {
	case ctx.Err() != nil && errors.Is(err, context.Canceled):
		return exitInterrupted
	case strings.HasPrefix(err.Error(), "unknown command"):
		return exitUsage // cobra's, for an unknown subcommand of the root
	}
	return exitError
}

// errorMessage is what main prints after "pgque: ".  The SDK and the engine
// both prefix their messages with "pgque: "; once is enough.
func errorMessage(ctx context.Context, err error) string {
	if exitCode(ctx, err) == exitInterrupted {
		return "interrupted"
	}
	msg := strings.ReplaceAll(err.Error(), "pgque: ", "")
	if errors.Is(err, pgque.ErrNotInstalled) && !strings.Contains(msg, "pgque migrate") {
		msg += "; pgque is not installed in this database ('pgque migrate' installs it)"
	}
	return msg
}

// Argument validators that report usage errors.

func noArgs(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		if cmd.HasSubCommands() {
			return usageError{fmt.Errorf("unknown command %q for %q", args[0], cmd.CommandPath())}
		}
		return usageError{fmt.Errorf("%s takes no arguments", cmd.CommandPath())}
	}
	return nil
}

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usageError{fmt.Errorf("%s needs %d argument(s) (%s), got %d",
				cmd.CommandPath(), n, strings.TrimPrefix(cmd.Use, cmd.Name()+" "), len(args))}
		}
		return nil
	}
}

func rangeArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usageError{fmt.Errorf("%s needs %d to %d arguments (%s), got %d",
				cmd.CommandPath(), lo, hi, strings.TrimPrefix(cmd.Use, cmd.Name()+" "), len(args))}
		}
		return nil
	}
}

func minArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < n {
			return usageError{fmt.Errorf("%s needs at least %d argument(s) (%s), got %d",
				cmd.CommandPath(), n, strings.TrimPrefix(cmd.Use, cmd.Name()+" "), len(args))}
		}
		return nil
	}
}

// groupCmd is a command that only holds subcommands: run bare, it prints
// its help; with an unknown subcommand it is a usage error.
func groupCmd(use, short string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  noArgs,
	}
	var names []string
	for _, s := range subs {
		names = append(names, s.Name())
	}
	c.RunE = func(cmd *cobra.Command, _ []string) error {
		return usageError{fmt.Errorf("%s needs a subcommand: %s", cmd.CommandPath(), strings.Join(names, ", "))}
	}
	c.AddCommand(subs...)
	return c
}

// connect opens a client on --dsn.  Every command runs a handful of
// statements at most, so the pool stays small.
func (g *globals) connect(ctx context.Context) (*pgque.Client, error) {
	if g.dsn == "" {
		return nil, usageError{errors.New("no database: give --dsn or set PGQUE_DSN")}
	}
	return pgque.Connect(ctx, g.dsn, append(g.clientOptions(), pgque.WithPoolConfig(func(c *pgxpool.Config) { c.MaxConns = 4 }))...)
}

// clientOptions are the options every client of the command line gets.
func (g *globals) clientOptions() []pgque.ClientOption {
	if g.directDSN == "" {
		return nil
	}
	return []pgque.ClientOption{pgque.WithDirectDSN(g.directDSN)}
}

// install runs pgque.Install on --direct-dsn when given, else on the
// client's pool: installing holds a session's lock, which a transaction
// pooler cannot keep.
func (g *globals) install(ctx context.Context, client *pgque.Client, opts ...pgque.InstallOption) (pgque.InstallMethod, error) {
	if g.directDSN == "" {
		return pgque.Install(ctx, client.Pool(), opts...)
	}
	pool, err := pgxpool.New(ctx, g.directDSN)
	if err != nil {
		return "", fmt.Errorf("--direct-dsn: %w", err)
	}
	defer pool.Close()
	return pgque.Install(ctx, pool, opts...)
}

// output prints a command's result as a table (the default) or as JSON.
type output struct {
	json bool
	w    io.Writer
}

// newOutput registers --json on cmd; call bind in RunE.
func newOutput(cmd *cobra.Command) *output {
	o := &output{}
	cmd.Flags().BoolVar(&o.json, "json", false, "print JSON instead of a table (the HTTP API's bodies; see docs/operations.md)")
	return o
}

func (o *output) bind(cmd *cobra.Command) *output {
	o.w = cmd.OutOrStdout()
	return o
}

// print writes v as JSON, or calls table with a tabwriter that is flushed after.
func (o *output) print(v any, table func(w io.Writer)) error {
	if o.json {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			return err
		}
		_, err := o.w.Write(b.Bytes())
		return err
	}
	tw := tabwriter.NewWriter(o.w, 0, 0, 2, ' ', 0)
	table(tw)
	return tw.Flush()
}

// printList prints body (the command's JSON, an HTTP API body) with
// --json, or items as a table: header, then row for each item.
func printList[T any](o *output, cmd *cobra.Command, body any, items []T,
	header string, row func(w io.Writer, item T)) error {
	return o.bind(cmd).print(body, func(w io.Writer) {
		fmt.Fprintln(w, header)
		for _, it := range items {
			row(w, it)
		}
	})
}

// Formatting for tables.

// cell makes text safe for one tabwriter cell.
var cell = strings.NewReplacer("\t", `\t`, "\n", `\n`, "\r", `\r`).Replace

func strOr(s *string, none string) string {
	if s == nil {
		return none
	}
	return cell(*s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func intOr[T int | int64](p *T, none string) string {
	if p == nil {
		return none
	}
	return fmt.Sprint(*p)
}

func durationOr(d *time.Duration, none string) string {
	if d == nil {
		return none
	}
	return fmtDuration(*d)
}

// fmtDuration prints d compactly ("1h", "2h30m", "10s", "1.5ms"), in a form
// PostgreSQL also accepts as an interval.
func fmtDuration(d time.Duration) string {
	switch {
	case d < 0:
		return "-" + fmtDuration(-d)
	case d == 0:
		return "0s"
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0 && d > time.Hour:
		return fmt.Sprintf("%dh%dm", d/time.Hour, d%time.Hour/time.Minute)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	case d >= time.Minute:
		return d.Round(time.Second).String()
	case d >= time.Second:
		return d.Round(time.Millisecond).String()
	}
	// Not Go's "µs", which PostgreSQL does not read.
	return strconv.FormatFloat(float64(d.Round(time.Microsecond))/float64(time.Millisecond), 'f', -1, 64) + "ms"
}
