package main

import (
	"fmt"
	"io"
	"math"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
)

func newJobCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "job QUEUE MSG_ID",
		Short: "Show where one message stands for each consumer of its queue",
		Long: `job tells, for every consumer of the queue, where the message stands:
not_ticked, pending, handed_out (to which worker, lease until when), done,
retrying (attempt, due at, reason), dead (reason), delayed (due at), cancelled,
unclaimed (the queue has no consumer) or unknown (no table or store holds it:
never sent, or reclaimed by rotation).  It moves nothing.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID("message id", args[1])
		if err != nil {
			return err
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ss, err := client.MessageStatus(cmd.Context(), args[0], id)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.MessageStatus(id, ss), ss, stateHeader, stateRow)
	}
	return cmd
}

func newJobsCmd(g *globals) *cobra.Command {
	var (
		state, consumer, typ string
		limit                int
		after                int64
	)
	cmd := &cobra.Command{
		Use:   "jobs QUEUE --state pending|retrying|dead|delayed",
		Short: "List a queue's messages in one state, oldest first",
		Long: `jobs lists the queue's messages in one state, oldest (lowest id) first, a row
per consumer: pending (what --consumer has not finished: handed out or not
yet), retrying (nacked or snoozed), dead, or delayed (sent for later).  Page
with --after (the last MSG_ID of the previous page).  It moves nothing.`,
		Args: exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.Flags().StringVar(&state, "state", "", "pending, retrying, dead or delayed (required)")
	cmd.Flags().StringVar(&consumer, "consumer", "", "whose messages (required for pending; default every consumer)")
	cmd.Flags().StringVar(&typ, "type", "", "only events of this type")
	cmd.Flags().IntVar(&limit, "limit", 100, "most messages to list")
	cmd.Flags().Int64Var(&after, "after", 0, "list messages after this id")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case state == "":
			return usageError{fmt.Errorf("--state is required: pending, retrying, dead or delayed")}
		case limit < 1 || limit > math.MaxInt32:
			return usageError{fmt.Errorf("--limit %d is out of range: must be from 1 to %d", limit, math.MaxInt32)}
		case after < 0:
			return usageError{fmt.Errorf("--after %d is negative", after)}
		}
		if err := checkConsumerFlag(cmd, consumer); err != nil {
			return err
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ss, err := client.ListMessages(cmd.Context(), args[0], pgque.JobState(state),
			pgque.ListOptions{Consumer: consumer, Max: limit, After: after, Type: typ})
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.MessageList(ss), ss, "MSG_ID\t"+stateHeader,
			func(w io.Writer, s pgque.MessageState) {
				fmt.Fprintf(w, "%d\t", s.MsgID)
				stateRow(w, s)
			})
	}
	return cmd
}

const stateHeader = "CONSUMER\tSTATE\tWORKER\tLEASE_UNTIL\tRETRY\tDUE_AT\tREASON\tTYPE\tPAYLOAD"

// stateRow is the table row of where a message stands for a consumer.
func stateRow(w io.Writer, s pgque.MessageState) {
	typ, payload := "-", "-"
	if s.Message != nil {
		typ, payload = cell(s.Message.Type), cell(s.Message.Payload)
	}
	consumer := s.Consumer
	if consumer == "" {
		consumer = "-"
	}
	fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(consumer), s.State, strOr(s.Worker, "-"),
		timeOr(s.LeaseUntil, "-"), intOr(s.RetryCount, "-"), timeOr(s.DueAt, "-"), strOr(s.Reason, "-"),
		typ, payload)
}

func newCancelCmd(g *globals) *cobra.Command {
	var consumer string
	cmd := &cobra.Command{
		Use:   "cancel QUEUE MSG_ID",
		Short: "Take a message back before it is handled",
		Long: `cancel takes the message back for --consumer, or for every consumer of the
queue: it is never delivered to them afterwards (a retrying one loses its
retry, a delayed one is cancelled for all).  It prints what it did per
consumer: cancelled, handed_out (being handled: cancelled too), done or dead
(too late), unknown.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().StringVar(&consumer, "consumer", "", "cancel for this consumer only")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		id, err := parseID("message id", args[1])
		if err != nil {
			return err
		}
		if err := checkConsumerFlag(cmd, consumer); err != nil {
			return err
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		rs, err := client.Cancel(cmd.Context(), args[0], id, consumer)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Cancel(id, rs), rs, "CONSUMER\tOUTCOME", func(w io.Writer, r pgque.CancelResult) {
			c := r.Consumer
			if c == "" {
				c = "-"
			}
			fmt.Fprintf(w, "%s\t%s\n", cell(c), r.Outcome)
		})
	}
	return cmd
}

// checkConsumerFlag refuses --consumer given empty: left out, it means every
// consumer, and an unset shell variable must not widen a command to them.
func checkConsumerFlag(cmd *cobra.Command, consumer string) error {
	if cmd.Flags().Changed("consumer") && consumer == "" {
		return usageError{fmt.Errorf("--consumer must not be empty: leave it out for every consumer")}
	}
	return nil
}
