package main

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/pgque"
)

func newTickerCmd(g *globals) *cobra.Command {
	var tick, maint, election time.Duration
	var quiet bool
	cmd := &cobra.Command{
		Use:   "ticker",
		Short: "Run the ticker and maintenance for the database until interrupted",
		Long: `ticker calls pgque.ticker() every --tick-interval and pgque.maint() every
--maint-interval, each in its own transaction, until Ctrl-C or SIGTERM.
Without it (or another ticker: the Go SDK's, a SQL loop, pg_cron) messages are
not delivered, retries not moved, and storage not reclaimed.

Run as many as you like for availability: they elect one leader per database
with an advisory lock, and another takes over within --election-interval when
the leader stops or its connection dies.  Connection failures are logged and
retried.  Its role needs pgque_admin.  It logs to stderr.`,
		Args: noArgs,
	}
	f := cmd.Flags()
	f.DurationVar(&tick, "tick-interval", pgque.DefaultTickInterval, "how often to call pgque.ticker(); bounds delivery latency")
	f.DurationVar(&maint, "maint-interval", time.Second, "how often to call pgque.maint()")
	f.DurationVar(&election, "election-interval", time.Second, "how often a standby tries to become the leader")
	f.BoolVarP(&quiet, "quiet", "q", false, "log errors only, not leadership changes")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if tick <= 0 || maint <= 0 || election <= 0 {
			return usageError{fmt.Errorf("intervals must be positive")}
		}
		ctx := cmd.Context()
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		// Fail now on a database without pgque, rather than retry forever.
		var version string
		if err := client.Pool().QueryRow(ctx, `SELECT pgque.version()`).Scan(&version); err != nil {
			return fmt.Errorf("is pgque installed? ('pgque migrate' installs it): %w", err)
		}
		level := slog.LevelInfo
		if quiet {
			level = slog.LevelWarn
		}
		log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
		log.Info("pgque ticker starting", "engine", version, "tick_interval", tick, "maint_interval", maint)
		err = client.RunTicker(ctx, pgque.WithTickInterval(tick), pgque.WithMaintInterval(maint),
			pgque.WithElectionInterval(election), pgque.WithTickerLogger(log))
		if err == nil {
			log.Info("pgque ticker stopped")
		}
		return err
	}
	return cmd
}
