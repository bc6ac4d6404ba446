package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// hiLoClient is a client of a fresh database with the queues "hi" and
// "lo", the consumer "c" subscribed to both.
func hiLoClient(t *testing.T) *pgque.Client {
	t.Helper()
	client := newClient(t, "lo", "c")
	if _, err := client.CreateQueue(context.Background(), "hi"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Subscribe(context.Background(), "hi", "c"); err != nil {
		t.Fatal(err)
	}
	return client
}

// With a backlog in both queues, concurrency 1 and pieces of one message,
// a Consumer WithQueues handles the first queue's backlog before it reads
// the second; then it serves the second while the first has nothing.
func TestConsumerQueuesStrictPriority(t *testing.T) {
	ctx := context.Background()
	client := hiLoClient(t)
	// The low queue's jobs are sent first; both backlogs are ticked before
	// the consumer starts.
	for i := range 3 {
		if _, err := client.Send(ctx, "lo", pgque.Event{Type: "job", Payload: fmt.Sprintf("lo%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if _, err := client.Send(ctx, "hi", pgque.Event{Type: "job", Payload: fmt.Sprintf("hi%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"lo", "hi"} {
		if _, err := client.ForceTick(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	order := make(chan string, 10)
	c := client.NewConsumer("hi", "c", pgque.WithQueues("lo"), pgque.WithMaxMessages(1), fastTicker(), consumerLogger(t))
	c.Handle("job", func(ctx context.Context, msg pgque.Message) error {
		order <- msg.Payload
		return nil
	})
	run := consumerRun(t, c)
	var got []string
	for i := range 6 {
		got = append(got, consumerAwait(t, order, consumerTimeout, fmt.Sprintf("job %d", i)))
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v", err)
	}
	if want := `["hi0" "hi1" "hi2" "lo0" "lo1" "lo2"]`; fmt.Sprint(got) != want { // JSON payloads
		t.Errorf("order = %v, want %s", got, want)
	}
	consumerNoMore(t, client, "hi", "c")
	consumerNoMore(t, client, "lo", "c")
}

func TestConsumerQueuesErrors(t *testing.T) {
	client := newClient(t, "a", "c")
	h := func(context.Context, pgque.Message) error { return nil }
	c := client.NewConsumer("a", "c", pgque.WithQueues("b"), pgque.WithSingleReader())
	c.Handle("*", h)
	if err := c.Start(context.Background()); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("Start with WithSingleReader = %v, want ErrInvalidArgument", err)
	}
	c = client.NewConsumer("a", "c", pgque.WithQueues("missing"))
	c.Handle("*", h)
	if err := c.Start(context.Background()); !errors.Is(err, pgque.ErrQueueNotFound) {
		t.Errorf("Start with a missing queue = %v, want ErrQueueNotFound", err)
	}
}

// ReceiveFirst takes the first queue in order with messages, names it on
// each message, and reads a later queue only once the earlier ones have
// nothing; as a worker too.
func TestReceiveFirstStrictPriority(t *testing.T) {
	ctx := context.Background()
	client := hiLoClient(t)
	for _, q := range []string{"lo", "hi"} {
		if _, err := client.Send(ctx, q, pgque.Event{Type: "job", Payload: q}); err != nil {
			t.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	queues := []string{"hi", "lo"}
	for _, want := range []string{"hi", "lo"} {
		msgs, err := client.ReceiveFirst(ctx, queues, "c", 10, pgque.AsWorker("w", time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].Queue != want || msgs[0].Payload != `"`+want+`"` {
			t.Fatalf("ReceiveFirst = %+v, want the message of %s", msgs, want)
		}
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
	if msgs, err := client.ReceiveFirst(ctx, queues, "c", 10); err != nil || len(msgs) != 0 {
		t.Errorf("ReceiveFirst with nothing left = %v, %v", msgs, err)
	}
	if _, err := client.ReceiveFirst(ctx, nil, "c", 10); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("ReceiveFirst without queues = %v, want ErrInvalidArgument", err)
	}
	_, err := client.ReceiveFirst(ctx, []string{"hi", "missing"}, "c", 10)
	if !errors.Is(err, pgque.ErrQueueNotFound) || !strings.Contains(err.Error(), "queue missing") {
		t.Errorf("ReceiveFirst with a missing queue = %v, want ErrQueueNotFound naming it", err)
	}
}
