package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

func newDLQCmd(g *globals) *cobra.Command {
	return groupCmd("dlq", "List, replay and purge dead letters",
		newDLQListCmd(g), newDLQReplayCmd(g), newDLQPurgeCmd(g))
}

func newDLQListCmd(g *globals) *cobra.Command {
	var limit int
	cmd := &cobra.Command{
		Use:   "list QUEUE",
		Short: "List a queue's dead letters, newest first",
		Args:  exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().IntVar(&limit, "limit", 100, "most dead letters to list")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if limit < 1 || limit > math.MaxInt32 {
			return usageError{fmt.Errorf("--limit %d is out of range: must be from 1 to %d", limit, math.MaxInt32)}
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ds, err := client.DeadLetters(cmd.Context(), args[0], limit)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.DeadLetters(ds), ds, "DL_ID\tCONSUMER\tDEAD_AT\tREASON\tMSG_ID\tTYPE\tRETRY\tPAYLOAD",
			func(w io.Writer, d pgque.DeadLetter) {
				m := d.Message
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", d.ID, d.Consumer, d.DeadAt.Format(time.RFC3339),
					strOr(d.Reason, "-"), m.MsgID, cell(m.Type), intOr(m.RetryCount, "-"), cell(m.Payload))
			})
	}
	return cmd
}

func newDLQReplayCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "replay DL_ID [DL_ID ...]",
		Short: "Deliver dead letters again, to the consumer that dead-lettered each",
		Long: `replay delivers each dead letter again as a first delivery (with the full
max_retries), only to the consumer that dead-lettered it, after the next tick,
and removes it from the dead letters.  Each replay is its own transaction; on
an error the ones before it are done.  It prints the message ids.`,
		Args: minArgs(1),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var ids []int64
		for _, a := range args {
			id, err := parseID("dead letter id", a)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		res := []pgquehttp.ReplayResponse{}
		var rerr error
		for _, id := range ids {
			msg, err := client.ReplayDeadLetter(cmd.Context(), id)
			if err != nil {
				rerr = err
				break
			}
			res = append(res, pgquehttp.ReplayResponse{ID: id, MsgID: msg})
		}
		if err := out.bind(cmd).print(res, func(w io.Writer) {
			for _, r := range res {
				fmt.Fprintf(w, "dead letter %d replayed: message %d\n", r.ID, r.MsgID)
			}
		}); err != nil {
			return err
		}
		return rerr
	}
	return cmd
}

func newDLQPurgeCmd(g *globals) *cobra.Command {
	var olderThan time.Duration
	var all bool
	cmd := &cobra.Command{
		Use:   "purge QUEUE (--older-than DURATION | --all)",
		Short: "Delete a queue's old dead letters",
		Args:  exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "delete the dead letters at least this old (e.g. 720h)")
	cmd.Flags().BoolVar(&all, "all", false, "delete every dead letter of the queue")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case all == cmd.Flags().Changed("older-than"):
			return usageError{errors.New("give either --older-than or --all")}
		case olderThan < 0:
			return usageError{fmt.Errorf("--older-than %v is negative", olderThan)}
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		n, err := client.PurgeDeadLetters(cmd.Context(), args[0], olderThan)
		if err != nil {
			return err
		}
		return out.bind(cmd).print(pgquehttp.PurgeResponse{Purged: n}, func(w io.Writer) { fmt.Fprintf(w, "%d dead letter(s) purged\n", n) })
	}
	return cmd
}
