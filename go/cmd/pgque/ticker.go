package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/pgque"
)

func newTickerCmd(g *globals) *cobra.Command {
	var tick, idle, maint, election, lease time.Duration
	var quiet bool
	var logs logFlags
	cmd := &cobra.Command{
		Use:   "ticker",
		Short: "Run the ticker and maintenance for the database until interrupted",
		Long: `ticker calls pgque.ticker() every --tick-interval while queues tick
(every --idle-tick-interval once nothing has ticked for a second, and at once
when a send into a quiet queue notifies pgque:wake) and pgque.maint() every
--maint-interval, each in its own transaction, until Ctrl-C or SIGTERM.
Without it (or another ticker: the Go SDK's, a SQL loop, pg_cron) messages are
not delivered, retries not moved, and storage not reclaimed.

Run as many as you like for availability: they elect one leader per database
with a lease in the database (pgque.leader_lease) that the leader renews every
third of --leader-lease.  A leader that cannot renew in time (frozen, stalled,
cut off) stops ticking; a standby takes over once the lease ran out, within
about --leader-lease plus --election-interval.  A leader that is stopped
(Ctrl-C, SIGTERM) releases the lease, so a standby takes over at once.

Errors the server answers with are logged with their SQLSTATE (for example
"ticker(): 53100 could not extend file ...") and retried on the same
connection; a lost connection is logged as such and reconnected.  Retries wait
50 ms, doubling up to 500 ms.  Its role needs pgque_admin.  It logs to stderr, as text or
(--log-format json) one JSON object a line.`,
		Args: noArgs,
	}
	f := cmd.Flags()
	f.DurationVar(&tick, "tick-interval", pgque.DefaultTickInterval, "how often to call pgque.ticker() while queues tick; bounds delivery latency")
	f.DurationVar(&idle, "idle-tick-interval", pgque.DefaultIdleTickInterval, "how often to call pgque.ticker() once nothing has ticked for a second")
	f.DurationVar(&maint, "maint-interval", time.Second, "how often to call pgque.maint()")
	f.DurationVar(&election, "election-interval", 0, "how often a standby tries to become the leader (default a third of --leader-lease)")
	f.DurationVar(&lease, "leader-lease", pgque.DefaultLeaderLease, "how long leadership lasts without a renewal (1ms..1h)")
	f.BoolVarP(&quiet, "quiet", "q", false, "log errors only, not leadership changes")
	logs.register(cmd)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if tick <= 0 || idle <= 0 || maint <= 0 || election < 0 {
			return usageError{fmt.Errorf("intervals must be positive")}
		}
		if lease < time.Millisecond || lease > time.Hour {
			return usageError{fmt.Errorf("--leader-lease %v is out of range: must be at least 1ms and at most 1h", lease)}
		}
		if election == 0 {
			election = lease / 3
		}
		level := slog.LevelInfo
		if quiet {
			level = slog.LevelWarn
		}
		log, err := logs.logger(cmd.ErrOrStderr(), level)
		if err != nil {
			return err
		}

		ctx := cmd.Context()
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		// Fail now on a database without pgque, or with an engine this
		// program may not be able to call, rather than retry forever.
		if err := client.CheckEngine(ctx); err != nil {
			return err
		}
		log.Info("pgque ticker starting", "engine", pgque.EmbeddedEngine(), "tick_interval", tick,
			"idle_tick_interval", idle, "maint_interval", maint, "leader_lease", lease)
		err = client.RunTicker(ctx, pgque.WithTickInterval(tick), pgque.WithIdleTickInterval(idle), pgque.WithMaintInterval(maint),
			pgque.WithElectionInterval(election), pgque.WithLeaderLease(lease), pgque.WithTickerLogger(log))
		if err == nil {
			log.Info("pgque ticker stopped")
		}
		return err
	}
	return cmd
}
