package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// retryText is a delivery's RetryCount as text: "first" or "retry n".
func retryText(m pgque.Message) string {
	if m.RetryCount == nil {
		return "first"
	}
	return fmt.Sprintf("retry %d", *m.RetryCount)
}

// A snoozed message comes back without a failure counted: with max_retries
// 0, a single counted failure would dead-letter it.  A rejected message
// goes to the dead letters at once although it has retries left.  Both
// work the same in a Consumer WithTransaction.
func TestConsumerSnoozeAndReject(t *testing.T) {
	for _, mode := range []string{"plain", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			client := newClient(t, "q", "c")
			consumerQueueConfig(t, client, "q", "max_retries", "0", "retry_backoff_base", "0")
			logs := newMatchLog("message rejected")
			opts := []pgque.Option{fastTicker(), pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}
			if mode == "transaction" {
				opts = append(opts, pgque.WithTransaction())
			}
			c := client.NewConsumer("q", "c", opts...)
			snoozes := make(chan string, 10)
			c.Handle("snooze", func(ctx context.Context, msg pgque.Message) error {
				snoozes <- retryText(msg)
				if len(snoozes) < 3 {
					return pgque.Snooze(0)
				}
				return nil
			})
			rejects := make(chan string, 10)
			c.Handle("reject", func(ctx context.Context, msg pgque.Message) error {
				rejects <- retryText(msg)
				return fmt.Errorf("order: %w", pgque.Reject(errors.New("bad payload")))
			})
			consumerRun(t, c)
			if _, err := client.Send(ctx, "q", pgque.Event{Type: "snooze", Payload: 1}); err != nil {
				t.Fatal(err)
			}
			rejected, err := client.Send(ctx, "q", pgque.Event{Type: "reject", Payload: 2}, pgque.WithMaxRetries(5))
			if err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				if got := consumerAwait(t, snoozes, consumerTimeout, "a snoozed delivery"); got != "first" {
					t.Errorf("snoozed delivery %d: %s, want first (a snooze counts no failure)", i+1, got)
				}
			}
			if got := consumerAwait(t, rejects, consumerTimeout, "the rejected delivery"); got != "first" {
				t.Errorf("rejected delivery: %s, want first", got)
			}
			consumerAwait(t, logs.seen, consumerTimeout, "the rejection logged")
			ds, err := client.DeadLetters(ctx, "q", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(ds) != 1 || ds[0].Message.MsgID != rejected || ds[0].Reason == nil || *ds[0].Reason != "bad payload" {
				t.Fatalf("dead letters %+v, want only message %d with reason \"bad payload\"", ds, rejected)
			}
			select {
			case got := <-rejects:
				t.Errorf("the rejected message came back (%s)", got)
			default:
			}
		})
	}
}

// A handler that overruns WithHandlerTimeout sees its context cancelled,
// with the timeout as the cause, and its message fails and is retried.
func TestConsumerHandlerTimeout(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	consumerQueueConfig(t, client, "q", "retry_backoff_base", "0")
	logs := newMatchLog("handler timed out after 20ms")
	c := client.NewConsumer("q", "c", fastTicker(), pgque.WithHandlerTimeout(20*time.Millisecond),
		pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	calls := make(chan string, 10)
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		calls <- retryText(msg)
		if msg.RetryCount != nil {
			return nil
		}
		<-ctx.Done() // a handler that honours its context
		return context.Cause(ctx)
	})
	consumerRun(t, c)
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "slow", Payload: 1}); err != nil {
		t.Fatal(err)
	}
	if got := consumerAwait(t, calls, consumerTimeout, "the first call"); got != "first" {
		t.Fatalf("first call: %s", got)
	}
	consumerAwait(t, logs.seen, consumerTimeout, "the timeout logged as the failure's reason")
	if got := consumerAwait(t, calls, consumerTimeout, "the retry"); got != "retry 1" {
		t.Errorf("second call: %s, want retry 1", got)
	}
	if !strings.Contains(logs.String(), "pgque: handler timeout") {
		t.Errorf("the reason does not name the cause: %s", logs.String())
	}
}

// Start refuses a negative handler timeout.
func TestConsumerHandlerTimeoutInvalid(t *testing.T) {
	client := newClient(t, "q", "c")
	err := client.NewConsumer("q", "c", pgque.WithHandlerTimeout(-time.Second)).Start(context.Background())
	if !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Fatalf("Start = %v, want ErrInvalidArgument", err)
	}
}

// Client.Snooze and Client.Reject by hand: range checks before SQL, and a
// message settled once.
func TestClientSnoozeReject(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	for _, p := range []int{1, 2} {
		if _, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: p}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "q", "c", 10)
	if err != nil || len(msgs) != 2 {
		t.Fatalf("Receive = %d messages, %v", len(msgs), err)
	}
	b := msgs[0].BatchID
	if _, err := client.Snooze(ctx, b, msgs[0], -time.Second); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("Snooze(-1s) = %v, want ErrInvalidArgument", err)
	}
	if _, err := client.Reject(ctx, b, msgs[1], "bad\x00"); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("Reject with a NUL in the reason = %v, want ErrInvalidArgument", err)
	}
	for _, c := range []struct {
		do   func() (pgque.Outcome, error)
		want pgque.Outcome
	}{
		{func() (pgque.Outcome, error) { return client.Snooze(ctx, b, msgs[0], time.Hour) }, pgque.OutcomeSnoozed},
		{func() (pgque.Outcome, error) { return client.Reject(ctx, b, msgs[0], "no") }, pgque.OutcomeRetry},
		{func() (pgque.Outcome, error) { return client.Reject(ctx, b, msgs[1], "no") }, pgque.OutcomeDead},
		{func() (pgque.Outcome, error) { return client.Snooze(ctx, b, msgs[1], 0) }, pgque.OutcomeDead},
	} {
		if out, err := c.do(); err != nil || out != c.want {
			t.Errorf("outcome %q, %v; want %q", out, err, c.want)
		}
	}
	if err := client.Ack(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Snooze(ctx, b, msgs[0], 0); !errors.Is(err, pgque.ErrBatchNotFound) {
		t.Errorf("Snooze after Ack = %v, want ErrBatchNotFound", err)
	}
}
