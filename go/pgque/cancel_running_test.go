package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// Cancelling messages a Consumer holds: the running handler's context is
// cancelled at the next heartbeat with the cause ErrMessageCancelled, a
// cancelled message of the piece not started yet is skipped, and neither
// is retried or dead-lettered; the piece's other messages are handled.  In
// both settling modes: plain, and one transaction per piece.
func TestConsumerCancelRunning(t *testing.T) {
	for _, mode := range []struct {
		name string
		opts []pgque.Option
	}{{"plain", nil}, {"transaction", []pgque.Option{pgque.WithTransaction()}}} {
		t.Run(mode.name, func(t *testing.T) {
			ctx := context.Background()
			client := newClient(t, "q", "c")
			started := make(chan int64, 10)
			causes := make(chan error, 10)
			handled := make(chan int64, 10)
			opts := append([]pgque.Option{fastTicker(), consumerLogger(t), pgque.WithLease(300 * time.Millisecond)}, mode.opts...)
			c := client.NewConsumer("q", "c", opts...)
			c.Handle("block", func(ctx context.Context, msg pgque.Message) error {
				started <- msg.MsgID
				<-ctx.Done()
				causes <- context.Cause(ctx)
				return ctx.Err()
			})
			c.Handle("note", func(_ context.Context, msg pgque.Message) error {
				handled <- msg.MsgID
				return nil
			})
			ids, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "block", Payload: 1}, {Type: "note", Payload: 2},
				{Type: "note", Payload: 3}})
			if err != nil {
				t.Fatal(err)
			}
			run := consumerRun(t, c)
			if got := consumerAwait(t, started, consumerTimeout, "the blocking handler"); got != ids[0] {
				t.Fatalf("started %d, want %d", got, ids[0])
			}
			// The waiting message first: the consumer learns a piece's
			// cancellations in one answer, so the one that ends the running
			// handler brings the other along.  In the other order, a check
			// between the two calls would start message 2 before its
			// cancellation (a cancel that comes too late is best effort).
			for _, id := range []int64{ids[1], ids[0]} {
				res, err := client.Cancel(ctx, "q", id, "")
				if err != nil || len(res) != 1 || res[0].Outcome != "handed_out" {
					t.Fatalf("Cancel(%d) = %+v, %v; want handed_out", id, res, err)
				}
			}
			if cause := consumerAwait(t, causes, consumerTimeout, "the handler's context"); cause != pgque.ErrMessageCancelled {
				t.Errorf("cause = %v, want ErrMessageCancelled", cause)
			}
			if got := consumerAwait(t, handled, consumerTimeout, "the third message"); got != ids[2] {
				t.Errorf("handled %d, want %d (the cancelled one is skipped)", got, ids[2])
			}
			if err := run.stop(); err != nil {
				t.Fatalf("Start = %v", err)
			}
			select {
			case id := <-handled:
				t.Errorf("message %d handled as well", id)
			default:
			}
			want := []pgque.JobState{pgque.JobCancelled, pgque.JobCancelled, pgque.JobDone}
			for i, id := range ids {
				ss, err := client.MessageStatus(ctx, "q", id)
				if err != nil || len(ss) != 1 || ss[0].State != want[i] {
					t.Errorf("message %d: %+v, %v; want %s", i, ss, err, want[i])
				}
			}
			for _, st := range []pgque.JobState{pgque.JobRetrying, pgque.JobDead} {
				if ss, err := client.ListMessages(ctx, "q", st, pgque.ListOptions{}); err != nil || len(ss) != 0 {
					t.Errorf("%s: %s, %v; want none", st, fmt.Sprint(ss), err)
				}
			}
		})
	}
}

// A handler that returns Cancel has its message cancelled for its
// consumer: not retried (it has retries left), not dead-lettered, never
// delivered again, and MessageStatus says JobCancelled; in both settling
// modes.
func TestConsumerCancelOutcome(t *testing.T) {
	for _, mode := range []string{"plain", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			client := newClient(t, "q", "c")
			consumerQueueConfig(t, client, "q", "retry_backoff_base", "0")
			logs := newMatchLog("message cancelled by its handler")
			opts := []pgque.Option{fastTicker(), pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}
			if mode == "transaction" {
				opts = append(opts, pgque.WithTransaction())
			}
			c := client.NewConsumer("q", "c", opts...)
			calls := make(chan int64, 10)
			c.Handle("drop", func(_ context.Context, msg pgque.Message) error {
				calls <- msg.MsgID
				return fmt.Errorf("order: %w", pgque.Cancel(errors.New("withdrawn")))
			})
			consumerRun(t, c)
			id, err := client.Send(ctx, "q", pgque.Event{Type: "drop", Payload: 1})
			if err != nil {
				t.Fatal(err)
			}
			consumerAwait(t, calls, consumerTimeout, "the handler")
			consumerAwait(t, logs.seen, consumerTimeout, "the cancellation logged")
			// A second message handled after it shows the piece was acked;
			// the cancelled one must not come back before it.
			c2, err := client.Send(ctx, "q", pgque.Event{Type: "drop", Payload: 2})
			if err != nil {
				t.Fatal(err)
			}
			if got := consumerAwait(t, calls, consumerTimeout, "the next message"); got != c2 {
				t.Fatalf("handled %d, want %d (the cancelled message came back)", got, c2)
			}
			ss, err := client.MessageStatus(ctx, "q", id)
			if err != nil || len(ss) != 1 || ss[0].State != pgque.JobCancelled {
				t.Errorf("MessageStatus = %+v, %v; want cancelled", ss, err)
			}
			for _, st := range []pgque.JobState{pgque.JobRetrying, pgque.JobDead} {
				if ss, err := client.ListMessages(ctx, "q", st, pgque.ListOptions{}); err != nil || len(ss) != 0 {
					t.Errorf("%s: %s, %v; want none", st, fmt.Sprint(ss), err)
				}
			}
		})
	}
}
