package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/internal/wire"
	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgquehttp"
)

func newSubscribeCmd(g *globals) *cobra.Command {
	var ifNotExists bool
	cmd := &cobra.Command{
		Use:   "subscribe QUEUE CONSUMER",
		Short: "Subscribe a consumer to a queue",
		Long: `subscribe makes CONSUMER receive every event sent to QUEUE from now on.  Every
consumer sees every event; give each service that needs all events a name of
its own.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&ifNotExists, "if-not-exists", false, "succeed when it is subscribed already")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		changed, err := client.Subscribe(cmd.Context(), args[0], args[1])
		if err != nil {
			return err
		}
		if !changed && !ifNotExists {
			return conflict("consumer '%s' is already subscribed to queue '%s'", args[1], args[0])
		}
		return printSubscription(out.bind(cmd), pgquehttp.SubscribeResponse{Created: changed}, changed,
			fmt.Sprintf("consumer '%s' subscribed to queue '%s'", args[1], args[0]),
			fmt.Sprintf("consumer '%s' is subscribed to queue '%s' already", args[1], args[0]))
	}
	return cmd
}

func newUnsubscribeCmd(g *globals) *cobra.Command {
	var ifExists bool
	cmd := &cobra.Command{
		Use:   "unsubscribe QUEUE CONSUMER",
		Short: "Remove a consumer's subscription",
		Long: `unsubscribe removes the subscription with the consumer's position, open batch
and pending retries.  Its dead letters stay until purged.  A consumer that
stopped for good must be unsubscribed, or the queue's tables cannot rotate.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().BoolVar(&ifExists, "if-exists", false, "succeed when it is not subscribed")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		changed, err := client.Unsubscribe(cmd.Context(), args[0], args[1])
		if err != nil {
			return err
		}
		if !changed && !ifExists {
			return notFound("consumer '%s' is not subscribed to queue '%s'", args[1], args[0])
		}
		return printSubscription(out.bind(cmd), deleted{changed}, changed,
			fmt.Sprintf("consumer '%s' unsubscribed from queue '%s'", args[1], args[0]),
			fmt.Sprintf("consumer '%s' is not subscribed to queue '%s'", args[1], args[0]))
	}
	return cmd
}

func printSubscription(out *output, body any, changed bool, done, unchanged string) error {
	return out.print(body, func(w io.Writer) {
		if changed {
			fmt.Fprintln(w, done)
		} else {
			fmt.Fprintln(w, unchanged)
		}
	})
}

func newConsumersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumers [QUEUE]",
		Short: "List the consumers of a queue, or of every queue",
		Long: `consumers lists subscriptions: LAG is the time since the tick the consumer last
finished, LAST_SEEN the time since it last received or acked, PENDING the
events sent after its position (approximate), BATCH its own open batch (a
plain reader's), BATCH_AGE the time since the end tick of its oldest open
batch or worker window, WORKERS how many windows its workers hold ('pgque
workers' lists them).  Its position is the oldest of its own and of its
workers' windows.  BLOCKING yes means it is what keeps the queue's tables
from rotating: storage grows until it catches up or is unsubscribed (see
docs/operations.md).`,
		Args: rangeArgs(0, 1),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		queue := ""
		if len(args) == 1 {
			queue = args[0]
		}
		cs, err := client.Consumers(cmd.Context(), queue)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Consumers(cs), cs, "QUEUE\tCONSUMER\tLAG\tLAST_SEEN\tPENDING\tBATCH\tBATCH_AGE\tRETRY_PENDING\tDEAD_LETTERS\tBLOCKING\tWORKERS",
			func(w io.Writer, c pgque.ConsumerInfo) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\t%d\n", c.Queue, c.Name, fmtDuration(c.Lag),
					fmtDuration(c.LastSeen), c.PendingEvents, intOr(c.CurrentBatch, "-"), durationOr(c.BatchAge, "-"),
					c.RetryPending, c.DeadLetters, yesNo(c.BlockingRotation), c.WorkerBatches)
			})
	}
	return cmd
}

func newReceiveCmd(g *globals) *cobra.Command {
	var maxMsgs int
	var ack, single bool
	var worker string
	var lease time.Duration
	cmd := &cobra.Command{
		Use:   "receive QUEUE[,QUEUE...] CONSUMER",
		Short: "Receive the consumer's next messages",
		Long: `receive prints up to --max messages of CONSUMER and hands them to this
command as a cooperative worker of the consumer, as every reader of it is by
default: the messages are held for it for --lease, and nobody else gets them
meanwhile.  It does not acknowledge them: run 'pgque ack BATCH_ID' when they
are handled (within the lease), or pass --ack.  When they are not
acknowledged in time, the next reader of the consumer gets them.  To look at
what a consumer has not handled without taking anything, use 'pgque peek'.

The worker is named cli-<host>-<pid>-<random> unless --worker names it; one
receiving with --ack is forgotten afterwards.  Without --ack the worker stays
listed ('pgque workers') after the batch is acknowledged, until maintenance
forgets it after an hour idle: scripts that receive often should pass the
same --worker each time.

With --single-reader it reads the consumer's own batch instead, as its one
plain reader (PgQ style, whole batches in order, no lease): another receive
then gets the same messages again until they are acknowledged.  While
workers read the consumer, such a read is served as the worker '_plain'.

With --json it prints what the HTTP API's receive answers: the piece's
batch_id, the worker it was handed out to (absent with --single-reader) and
its messages; a payload is as sent when it is JSON, a string when it was
sent as other text through SQL, and null when NULL.

Several queues, comma-separated (urgent,normal), are asked in strict
priority for CONSUMER (subscribed to each): the first that hands out
messages gives the piece, so a queue is read only while every queue before
it has nothing.  One call hands out one queue's piece; the table then shows
each message's QUEUE, and --json prints what the HTTP API's
POST /v1/consumers/{consumer}/receive answers (the piece's queue too).`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().IntVar(&maxMsgs, "max", 100, "most messages to return")
	cmd.Flags().BoolVar(&ack, "ack", false, "acknowledge the messages after printing them")
	cmd.Flags().StringVar(&worker, "worker", "", "receive as this worker of the consumer (default: a name of its own)")
	cmd.Flags().DurationVar(&lease, "lease", pgque.DefaultLease, "how long the messages stay this receive's (at most 24h)")
	cmd.Flags().BoolVar(&single, "single-reader", false, "read the consumer's own batch, as its one plain reader")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		switch {
		case maxMsgs < 1:
			return usageError{fmt.Errorf("--max must be at least 1, not %d", maxMsgs)}
		case single && (worker != "" || cmd.Flags().Changed("lease")):
			return usageError{errors.New("--single-reader goes without --worker and --lease")}
		case lease <= 0 || lease > pgque.MaxLease:
			return usageError{fmt.Errorf("--lease %v is not in (0, %v]", lease, pgque.MaxLease)}
		}
		ctx := cmd.Context()
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		named := worker != ""
		if !single && !named {
			worker = pgque.WorkerName("cli-")
		}
		queues := strings.Split(args[0], ",")
		var msgs []pgque.Message
		switch {
		case len(queues) > 1 && single:
			msgs, err = client.ReceiveFirst(ctx, queues, args[1], maxMsgs)
		case len(queues) > 1:
			msgs, err = client.ReceiveFirst(ctx, queues, args[1], maxMsgs, pgque.AsWorker(worker, lease))
		case single:
			msgs, err = client.Receive(ctx, args[0], args[1], maxMsgs)
		default:
			msgs, err = client.ReceiveAsWorker(ctx, args[0], args[1], worker, maxMsgs, lease)
		}
		if err != nil {
			return err
		}
		header, row := "MSG_ID\tBATCH_ID\tTYPE\tRETRY\tCREATED_AT\tPAYLOAD", func(w io.Writer, m pgque.Message) {
			fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\n", m.MsgID, m.BatchID, cell(m.Type), intOr(m.RetryCount, "-"),
				m.CreatedAt.Format(time.RFC3339Nano), cell(m.Payload))
		}
		if len(queues) > 1 {
			one := row
			header, row = "QUEUE\t"+header, func(w io.Writer, m pgque.Message) {
				fmt.Fprintf(w, "%s\t", cell(m.Queue))
				one(w, m)
			}
		}
		err = printList(out, cmd, wire.Batch(msgs, worker), msgs, header, row)
		if err != nil || !ack || len(msgs) == 0 {
			return err
		}
		ok, err := client.AckResult(ctx, msgs[0].BatchID)
		if err != nil {
			return err
		} else if !ok {
			return notFound("batch %d was finished by someone else before it could be acknowledged", msgs[0].BatchID)
		}
		if !single && !named {
			// Only the queue that handed out the piece made the worker a row.
			if _, err := client.ReleaseWorker(ctx, msgs[0].Queue, args[1], worker); err != nil {
				return err
			}
		}
		return nil
	}
	return cmd
}

// parseID parses a batch, message or dead-letter id argument.
func parseID(what, s string) (int64, error) {
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil || id < 1 {
		return 0, usageError{fmt.Errorf("%s %q is not a positive integer", what, s)}
	}
	return id, nil
}

func newAckCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "ack BATCH_ID",
		Short: "Acknowledge messages received together",
		Long: `ack acknowledges the messages that one receive handed out: BATCH_ID is the
batch_id they were printed with (the id of that piece of the batch), never
more than that piece held.  It fails with exit status 3 when the piece is
unknown, was acknowledged already, or its batch was finished since; with
status 4 when its batch was taken over by another worker (the receive's
lease ran out: nothing is acknowledged); and with status 2 for the id of a
whole batch (as 'pgque consumers' and 'pgque workers' show them).`,
		Args: exactArgs(1),
	}
	out := newOutput(cmd)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		batch, err := parseID("batch id", args[0])
		if err != nil {
			return err
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		ok, err := client.AckResult(cmd.Context(), batch)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("batch %d: nothing to acknowledge (unknown, acknowledged already, or finished since)", batch)
		}
		return out.bind(cmd).print(pgquehttp.AckResponse{Acked: true}, func(w io.Writer) { fmt.Fprintf(w, "batch %d acknowledged\n", batch) })
	}
	return cmd
}

func newNackCmd(g *globals) *cobra.Command {
	var retryAfter time.Duration
	var reason string
	cmd := &cobra.Command{
		Use:   "nack BATCH_ID MSG_ID",
		Short: "Report that a received message failed: retry it later, or dead-letter it",
		Long: `nack queues the message for a retry by this consumer, after --retry-after or
the queue's exponential backoff, or dead-letters it (with --reason) when it was
retried max_retries times already.  It prints the outcome: retry or dead.  The
batch must still be acknowledged with 'pgque ack'.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().DurationVar(&retryAfter, "retry-after", 0, "delay before the retry, rounded up to seconds (0: the queue's backoff)")
	cmd.Flags().StringVar(&reason, "reason", "", "why it failed, kept with a dead letter")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		batch, err := parseID("batch id", args[0])
		if err != nil {
			return err
		}
		msg, err := parseID("message id", args[1])
		if err != nil {
			return err
		}
		if retryAfter < 0 {
			return usageError{fmt.Errorf("--retry-after %v is negative", retryAfter)}
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		secs := int(math.Ceil(retryAfter.Seconds()))
		outcome, err := client.NackResult(cmd.Context(), batch, pgque.Message{MsgID: msg, BatchID: batch}, secs, reason)
		if err != nil {
			return err
		}
		return out.bind(cmd).print(pgquehttp.NackResponse{Outcome: pgquehttp.Outcome(outcome)}, func(w io.Writer) { fmt.Fprintln(w, outcome) })
	}
	return cmd
}

func newPeekCmd(g *globals) *cobra.Command {
	var maxMsgs int
	cmd := &cobra.Command{
		Use:   "peek QUEUE CONSUMER",
		Short: "Show what a consumer has not acknowledged, taking nothing",
		Long: `peek prints up to --max messages CONSUMER has not acknowledged, in the order
they are handed out: first those in open batches (BATCH is the open batch,
WORKER the worker holding it, if any; handed out or not), then those the
next receive would get.  It moves, locks and takes nothing: use it to look
at a stuck consumer; 'pgque receive' would take the messages from it.
Events not ticked yet, retries not due yet and delayed events are not shown.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().IntVar(&maxMsgs, "max", 100, "most messages to show")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if maxMsgs < 1 {
			return usageError{fmt.Errorf("--max must be at least 1, not %d", maxMsgs)}
		}
		client, err := g.connect(cmd.Context())
		if err != nil {
			return err
		}
		defer client.Close()
		msgs, err := client.Peek(cmd.Context(), args[0], args[1], maxMsgs)
		if err != nil {
			return err
		}
		return printList(out, cmd, wire.Peek(msgs), msgs, "MSG_ID\tBATCH\tWORKER\tTYPE\tRETRY\tCREATED_AT\tPAYLOAD",
			func(w io.Writer, m pgque.PeekedMessage) {
				batch, worker := "-", "-"
				if m.BatchID != 0 {
					batch = strconv.FormatInt(m.BatchID, 10)
				}
				if m.Worker != "" {
					worker = m.Worker
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", m.MsgID, batch, cell(worker), cell(m.Type),
					intOr(m.RetryCount, "-"), m.CreatedAt.Format(time.RFC3339Nano), cell(m.Payload))
			})
	}
	return cmd
}
