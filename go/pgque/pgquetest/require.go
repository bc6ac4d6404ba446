package pgquetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/pgque/pgque/go/pgque"
)

// RequireSent fails the test unless queue holds an event of eventType
// ("": of any type) that the client can see, sent and committed by the
// code under test, and returns those events, newest first.  A queue is
// shared by the test's code only, so anything there was sent by it; see
// pgque.Client.FindEvents for what is listed.
func RequireSent(ctx context.Context, tb testing.TB, client *pgque.Client, queue, eventType string) []pgque.SentEvent {
	tb.Helper()
	evs, err := client.FindEvents(ctx, queue, pgque.FindOptions{Type: eventType, Max: maxFind})
	return requireSome(tb, evs, err, queue, eventType, "")
}

// RequireSentTx fails the test unless tx itself sent an event of eventType
// ("": of any type) to queue, not committed yet, and returns those events,
// newest first: for code that sends in the caller's transaction (an outbox).
// tx is a pgx.Tx, or a database/sql transaction through pgque.SQLTx.
func RequireSentTx(ctx context.Context, tb testing.TB, client *pgque.Client, tx pgque.DBTX, queue, eventType string) []pgque.SentEvent {
	tb.Helper()
	evs, err := client.FindEventsTx(ctx, tx, queue, pgque.FindOptions{Type: eventType, ThisTransaction: true, Max: maxFind})
	return requireSome(tb, evs, err, queue, eventType, " in this transaction")
}

// RequireNotSent fails the test if queue holds an event of eventType ("":
// of any type) that the client can see.
func RequireNotSent(ctx context.Context, tb testing.TB, client *pgque.Client, queue, eventType string) {
	tb.Helper()
	evs, err := client.FindEvents(ctx, queue, pgque.FindOptions{Type: eventType, Max: 1})
	requireNone(tb, evs, err, queue, eventType, "")
}

// RequireNotSentTx fails the test if tx itself sent an event of eventType
// ("": of any type) to queue.
func RequireNotSentTx(ctx context.Context, tb testing.TB, client *pgque.Client, tx pgque.DBTX, queue, eventType string) {
	tb.Helper()
	evs, err := client.FindEventsTx(ctx, tx, queue, pgque.FindOptions{Type: eventType, ThisTransaction: true, Max: 1})
	requireNone(tb, evs, err, queue, eventType, " in this transaction")
}

// maxFind bounds what the assertions return: a test looks at a few events.
const maxFind = 1000

// describe names what an assertion looks for: "event of type ... to queue ...".
func describe(queue, eventType, where string) string {
	if eventType == "" {
		return fmt.Sprintf("event to queue %q%s", queue, where)
	}
	return fmt.Sprintf("event of type %q to queue %q%s", eventType, queue, where)
}

func requireSome(tb testing.TB, evs []pgque.SentEvent, err error, queue, eventType, where string) []pgque.SentEvent {
	tb.Helper()
	if err != nil {
		tb.Fatalf("pgquetest: looking for an %s: %v", describe(queue, eventType, where), err)
	}
	if len(evs) == 0 {
		tb.Fatalf("pgquetest: want an %s, none was sent", describe(queue, eventType, where))
	}
	return evs
}

func requireNone(tb testing.TB, evs []pgque.SentEvent, err error, queue, eventType, where string) {
	tb.Helper()
	if err != nil {
		tb.Fatalf("pgquetest: looking for an %s: %v", describe(queue, eventType, where), err)
	}
	if len(evs) > 0 {
		tb.Fatalf("pgquetest: want no %s, got event %d (type %q, payload %s)",
			describe(queue, eventType, where), evs[0].MsgID, evs[0].Type, evs[0].Payload)
	}
}

// Worked is what Work did.
type Worked struct {
	Handled []pgque.Message // handlers returned nil; acknowledged
	Failed  []Failure       // handlers returned an error; nacked for a retry (or dead-lettered)
}

// Failure is a message whose handler failed, and its error.
type Failure struct {
	Message pgque.Message
	Err     error
}

// Work handles what is pending for consumer now, with handlers (by event
// type; "*" for every other type), and returns what it did: it ticks the
// queue, receives until nothing is left, runs each message's handler, acks
// what succeeded and nacks what failed (the queue's backoff; its max
// retries dead-letter), and returns.  Retries that come due later are not
// waited for.  The consumer must be subscribed before the events were sent
// (a consumer sees what was sent after it subscribed).  A message with no
// handler, or an error from pgque, fails the test.
func Work(ctx context.Context, tb testing.TB, client *pgque.Client, queue, consumer string,
	handlers map[string]pgque.HandlerFunc) Worked {
	tb.Helper()
	var w Worked
	if _, err := client.ForceTick(ctx, queue); err != nil {
		tb.Fatalf("pgquetest: work: %v", err)
	}
	for {
		msgs, err := client.Receive(ctx, queue, consumer, 100)
		if errors.Is(err, pgque.ErrConsumerNotFound) {
			tb.Fatalf("pgquetest: work: %v (subscribe the consumer before the code under test sends)", err)
		}
		if err != nil {
			tb.Fatalf("pgquetest: work: %v", err)
		}
		if len(msgs) == 0 {
			return w
		}
		for _, m := range msgs {
			h := handlers[m.Type]
			if h == nil {
				h = handlers["*"]
			}
			if h == nil {
				tb.Fatalf("pgquetest: work: no handler for message %d of type %q", m.MsgID, m.Type)
			}
			if err := h(ctx, m); err != nil {
				if nerr := client.Nack(ctx, m.BatchID, m, 0, err.Error()); nerr != nil {
					tb.Fatalf("pgquetest: work: nack message %d: %v", m.MsgID, nerr)
				}
				w.Failed = append(w.Failed, Failure{Message: m, Err: err})
				continue
			}
			w.Handled = append(w.Handled, m)
		}
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			tb.Fatalf("pgquetest: work: ack: %v", err)
		}
	}
}
