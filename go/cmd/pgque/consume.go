package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/pgque/pgque/go/pgque"
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
		return printSubscription(out.bind(cmd), args, changed,
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
		return printSubscription(out.bind(cmd), args, changed,
			fmt.Sprintf("consumer '%s' unsubscribed from queue '%s'", args[1], args[0]),
			fmt.Sprintf("consumer '%s' is not subscribed to queue '%s'", args[1], args[0]))
	}
	return cmd
}

func printSubscription(out *output, args []string, changed bool, done, unchanged string) error {
	res := struct {
		Queue    string `json:"queue"`
		Consumer string `json:"consumer"`
		Changed  bool   `json:"changed"`
	}{args[0], args[1], changed}
	return out.print(res, func(w io.Writer) {
		if changed {
			fmt.Fprintln(w, done)
		} else {
			fmt.Fprintln(w, unchanged)
		}
	})
}

// consumerJSON is a subscription in JSON output.
type consumerJSON struct {
	Queue            string   `json:"queue"`
	Consumer         string   `json:"consumer"`
	LagSeconds       float64  `json:"lag_seconds"`
	LastSeenSeconds  float64  `json:"last_seen_seconds"`
	LastTick         int64    `json:"last_tick"`
	CurrentBatch     *int64   `json:"current_batch"`
	NextTick         *int64   `json:"next_tick"`
	PendingEvents    int64    `json:"pending_events"`
	RetryPending     int64    `json:"retry_pending"`
	DeadLetters      int64    `json:"dead_letters"`
	BlockingRotation bool     `json:"blocking_rotation"`
	BatchAgeSeconds  *float64 `json:"batch_age_seconds"`
}

func newConsumersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "consumers [QUEUE]",
		Short: "List the consumers of a queue, or of every queue",
		Long: `consumers lists subscriptions: LAG is the time since the tick the consumer last
finished, LAST_SEEN the time since it last received or acked, PENDING the
events sent after its position (approximate), BATCH its open batch and
BATCH_AGE the time since that batch's end tick.  BLOCKING
yes means it is what keeps the queue's tables from rotating: storage grows
until it catches up or is unsubscribed (see docs/operations.md).`,
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
		return printList(out, cmd, cs, func(c pgque.ConsumerInfo) consumerJSON {
			return consumerJSON{
				Queue: c.Queue, Consumer: c.Name, LagSeconds: c.Lag.Seconds(), LastSeenSeconds: c.LastSeen.Seconds(),
				LastTick: c.LastTick, CurrentBatch: c.CurrentBatch, NextTick: c.NextTick,
				PendingEvents: c.PendingEvents, RetryPending: c.RetryPending, DeadLetters: c.DeadLetters,
				BlockingRotation: c.BlockingRotation, BatchAgeSeconds: secondsOrNil(c.BatchAge),
			}
		}, "QUEUE\tCONSUMER\tLAG\tLAST_SEEN\tPENDING\tBATCH\tBATCH_AGE\tRETRY_PENDING\tDEAD_LETTERS\tBLOCKING",
			func(w io.Writer, c pgque.ConsumerInfo) {
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%d\t%d\t%s\n", c.Queue, c.Name, fmtDuration(c.Lag),
					fmtDuration(c.LastSeen), c.PendingEvents, intOr(c.CurrentBatch, "-"), durationOr(c.BatchAge, "-"),
					c.RetryPending, c.DeadLetters, yesNo(c.BlockingRotation))
			})
	}
	return cmd
}

// messageJSON is a message in JSON output.
type messageJSON struct {
	MsgID      int64           `json:"msg_id"`
	BatchID    int64           `json:"batch_id,omitempty"`
	Type       string          `json:"type"`
	Payload    json.RawMessage `json:"payload"`
	RetryCount *int            `json:"retry_count"`
	CreatedAt  time.Time       `json:"created_at"`
	Extra1     *string         `json:"extra1"`
	Extra2     *string         `json:"extra2"`
	Extra3     *string         `json:"extra3"`
	Extra4     *string         `json:"extra4"`
}

func toMessageJSON(m pgque.Message) messageJSON {
	return messageJSON{MsgID: m.MsgID, BatchID: m.BatchID, Type: m.Type, Payload: jsonPayload(m.Payload),
		RetryCount: m.RetryCount, CreatedAt: m.CreatedAt, Extra1: m.Extra1, Extra2: m.Extra2,
		Extra3: m.Extra3, Extra4: m.Extra4}
}

func newReceiveCmd(g *globals) *cobra.Command {
	var maxMsgs int
	var ack bool
	var worker string
	var lease time.Duration
	cmd := &cobra.Command{
		Use:   "receive QUEUE CONSUMER",
		Short: "Receive messages of a consumer's current batch",
		Long: `receive prints up to --max messages of the consumer's open (or next) batch;
nothing when no tick delivered new events.  It does not acknowledge them:
run 'pgque ack BATCH_ID' when they are handled, or pass --ack.  Until then
another receive returns the same messages.

With --worker, it receives as that cooperative worker of the consumer: a
batch of the worker's own, which another worker takes over when it is not
acknowledged within --lease (see 'pgque workers').  A worker fails with exit
status 4 while the consumer has a batch of its own open.

In JSON, payload is the payload as sent when it is JSON, a string when it was
sent as other text through SQL, and null when NULL.`,
		Args: exactArgs(2),
	}
	out := newOutput(cmd)
	cmd.Flags().IntVar(&maxMsgs, "max", 100, "most messages to return")
	cmd.Flags().BoolVar(&ack, "ack", false, "acknowledge the messages after printing them")
	cmd.Flags().StringVar(&worker, "worker", "", "receive as this cooperative worker of the consumer")
	cmd.Flags().DurationVar(&lease, "lease", pgque.DefaultLease, "with --worker: how long the batch stays the worker's")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if maxMsgs < 1 {
			return usageError{fmt.Errorf("--max must be at least 1, not %d", maxMsgs)}
		}
		if cmd.Flags().Changed("lease") && worker == "" {
			return usageError{errors.New("--lease goes with --worker")}
		}
		if lease <= 0 {
			return usageError{fmt.Errorf("--lease %v is not positive", lease)}
		}
		ctx := cmd.Context()
		client, err := g.connect(ctx)
		if err != nil {
			return err
		}
		defer client.Close()
		var msgs []pgque.Message
		if worker == "" {
			msgs, err = client.Receive(ctx, args[0], args[1], maxMsgs)
		} else {
			msgs, err = client.ReceiveAsWorker(ctx, args[0], args[1], worker, maxMsgs, lease)
		}
		if err != nil {
			return err
		}
		err = printList(out, cmd, msgs, toMessageJSON, "MSG_ID\tBATCH_ID\tTYPE\tRETRY\tCREATED_AT\tPAYLOAD",
			func(w io.Writer, m pgque.Message) {
				fmt.Fprintf(w, "%d\t%d\t%s\t%s\t%s\t%s\n", m.MsgID, m.BatchID, cell(m.Type), intOr(m.RetryCount, "-"),
					m.CreatedAt.Format(time.RFC3339Nano), payloadCell(m.Payload))
			})
		if err != nil || !ack || len(msgs) == 0 {
			return err
		}
		if ok, err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			return err
		} else if !ok {
			return notFound("batch %d was finished by someone else before it could be acknowledged", msgs[0].BatchID)
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
		Short: "Acknowledge what was received of a batch",
		Long: `ack acknowledges everything receive handed out of the batch so far.  It fails
with exit status 3 when the batch is unknown or finished, or nothing was
received from it since the last ack.`,
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
		ok, err := client.Ack(cmd.Context(), batch)
		if err != nil {
			return err
		}
		if !ok {
			return notFound("batch %d is not open, or nothing was received from it since the last ack", batch)
		}
		res := struct {
			BatchID int64 `json:"batch_id"`
			Acked   bool  `json:"acked"`
		}{batch, true}
		return out.bind(cmd).print(res, func(w io.Writer) { fmt.Fprintf(w, "batch %d acknowledged\n", batch) })
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
		outcome, err := client.Nack(cmd.Context(), batch, pgque.Message{MsgID: msg, BatchID: batch}, secs, reason)
		if err != nil {
			return err
		}
		res := struct {
			BatchID int64         `json:"batch_id"`
			MsgID   int64         `json:"msg_id"`
			Outcome pgque.Outcome `json:"outcome"`
		}{batch, msg, outcome}
		return out.bind(cmd).print(res, func(w io.Writer) { fmt.Fprintln(w, outcome) })
	}
	return cmd
}
