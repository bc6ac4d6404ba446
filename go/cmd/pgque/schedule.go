package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

// scheduleSpec is when a schedule runs, for a table.
func scheduleSpec(s pgque.ScheduleInfo) string {
	if s.Cron != "" {
		return "cron " + cell(s.Cron)
	}
	return "every " + fmtDuration(s.Every)
}

func timeOr(t *time.Time, none string) string {
	if t == nil {
		return none
	}
	return t.UTC().Format(time.RFC3339)
}

func newSchedulesCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schedules",
		Short: "List the schedules",
		Long: `schedules lists every schedule: the queue and event type it sends, its next
run, the due time of its last run, how many events it sent, and when it runs.
Schedules are fired by maintenance (a running ticker): a NEXT_RUN in the past
means no maintenance runs, or the schedule's event could not be sent (see the
server's log).`,
		Args: noArgs,
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ss, err := client.Schedules(cmd.Context())
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Schedules(ss), ss,
			"SCHEDULE\tQUEUE\tTYPE\tNEXT_RUN\tLAST_RUN\tRUNS\tTIME_ZONE\tWHEN",
			func(w io.Writer, s pgque.ScheduleInfo) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", s.Name, s.Queue, cell(s.Type),
					timeOr(&s.NextRun, "-"), timeOr(s.LastRun, "-"), s.Runs, s.TimeZone, scheduleSpec(s))
			})
	}
	return cmd
}

func newScheduleCmd(g *globals) *cobra.Command {
	return groupCmd("schedule", "Create and drop schedules of periodic events",
		newScheduleCreateCmd(g), newScheduleDropCmd(g))
}

func newScheduleCreateCmd(g *globals) *cobra.Command {
	var typ, cron, tz, startAt string
	var every time.Duration
	var ifNotExists bool
	cmd := &cobra.Command{
		Use:   "create SCHEDULE QUEUE [PAYLOAD]",
		Short: "Create a schedule that sends an event periodically",
		Long: `create makes maintenance (a running ticker) send an event of --type with the
JSON PAYLOAD (none: NULL) to QUEUE every --every, or whenever the cron
expression --cron matches the wall clock of --tz (default UTC).  Give exactly
one of --every and --cron.  The event's extra1 is the schedule's name, extra2
the due time it stands for.  After downtime a schedule fires once, for the
earliest run it missed.

  pgque schedule create cleanup jobs --type cleanup --every 15m
  pgque schedule create nightly reports --type report.build --cron '0 3 * * *' \
      --tz Europe/Berlin '{"scope": "day"}'

--every takes whole seconds ('90s', '1h').  --start-at (RFC 3339, with --every
only) pins the first run; when it has passed, the schedule keeps its grid.
Cron expressions: 5 fields (minute hour day-of-month month day-of-week) or
@hourly, @daily, @weekly, @monthly, @yearly (see docs/sql-reference.md).`,
		Args: rangeArgs(2, 3),
	}
	out := newOutput(cmd)
	f := cmd.Flags()
	f.StringVarP(&typ, "type", "t", "", "type of the events sent (required)")
	f.DurationVar(&every, "every", 0, "period: whole seconds, at least 1s")
	f.StringVar(&cron, "cron", "", "cron expression, e.g. '*/5 * * * *' or @daily")
	f.StringVar(&tz, "tz", "", "IANA time zone of --cron (and of calendar periods); default UTC")
	f.StringVar(&startAt, "start-at", "", "with --every: the first run, RFC 3339 (default: one period from now)")
	f.BoolVar(&ifNotExists, "if-not-exists", false, "succeed when a schedule by that name exists (it is not changed)")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if typ == "" {
			return usageError{errors.New("--type is required")}
		}
		if (every == 0) == (cron == "") {
			return usageError{errors.New("give exactly one of --every (whole seconds, at least 1s) and --cron (a non-empty expression)")}
		}
		s := pgque.Schedule{Name: args[0], Queue: args[1], Type: typ, Every: every, Cron: cron, TimeZone: tz}
		if startAt != "" {
			t, err := time.Parse(time.RFC3339, startAt)
			if err != nil {
				return usageError{fmt.Errorf("--start-at %q is not an RFC 3339 time such as 2026-01-01T00:15:00Z", startAt)}
			}
			if t.IsZero() {
				// The SDK takes a zero StartAt for "not given".
				return usageError{fmt.Errorf("--start-at %q is out of range: must be from 100 years ago to 100 years from now", startAt)}
			}
			s.StartAt = t
		}
		if len(args) == 3 {
			if !json.Valid([]byte(args[2])) {
				return usageError{fmt.Errorf("PAYLOAD is not valid JSON: %s", args[2])}
			}
			s.Payload = wire.InPayload(json.RawMessage(args[2]))
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		first, err := client.CreateSchedule(cmd.Context(), s)
		created := err == nil
		if ifNotExists && errors.Is(err, pgque.ErrScheduleExists) {
			err = nil
		}
		if err != nil {
			return err
		}
		var body pgquehttp.Schedule
		if out.json {
			if body, err = findSchedule(cmd.Context(), client, args[0]); err != nil {
				return err
			}
		}
		return out.bind(cmd).print(body, func(w io.Writer) {
			if created {
				fmt.Fprintf(w, "schedule '%s' created, first run %s\n", args[0], timeOr(&first, ""))
			} else {
				fmt.Fprintf(w, "schedule '%s' exists already\n", args[0])
			}
		})
	}
	return cmd
}

// findSchedule is the body of the schedule name (unique in the client's
// namespace), which the HTTP API answers its creation with.
func findSchedule(ctx context.Context, client *pgque.Client, name string) (pgquehttp.Schedule, error) {
	ss, err := client.Schedules(ctx)
	if err != nil {
		return pgquehttp.Schedule{}, err
	}
	for _, si := range ss {
		if si.Name == name {
			return wire.Schedule(si), nil
		}
	}
	return pgquehttp.Schedule{}, fmt.Errorf("schedule %q was dropped meanwhile", name)
}

func newScheduleDropCmd(g *globals) *cobra.Command {
	var ifExists bool
	cmd := &cobra.Command{
		Use:   "drop SCHEDULE",
		Short: "Drop a schedule",
		Long:  `drop deletes a schedule.  Events it sent already stay in their queue.`,
		Args:  exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed when there is no such schedule")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		dropped := true
		if err := client.DropSchedule(cmd.Context(), args[0]); err != nil {
			if !ifExists || !errors.Is(err, pgque.ErrScheduleNotFound) {
				return err
			}
			dropped = false
		}
		return out.bind(cmd).print(deleted{dropped}, func(w io.Writer) {
			if dropped {
				fmt.Fprintf(w, "schedule '%s' dropped\n", args[0])
			} else {
				fmt.Fprintf(w, "schedule '%s' does not exist\n", args[0])
			}
		})
	}
	return cmd
}
