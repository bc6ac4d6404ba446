package pgque_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// pauseSend sends n events to queue and returns their ids.
func pauseSend(t *testing.T, client *pgque.Client, queue string, n int) []int64 {
	t.Helper()
	ids := make([]int64, n)
	for i := range ids {
		id, err := client.Send(context.Background(), queue, pgque.Event{Type: "t", Payload: i})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = id
	}
	return ids
}

// pauseConsumerInfo returns the ConsumerInfo of consumer on queue.
func pauseConsumerInfo(t *testing.T, client *pgque.Client, queue, consumer string) pgque.ConsumerInfo {
	t.Helper()
	infos, err := client.Consumers(context.Background(), queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range infos {
		if ci.Name == consumer {
			return ci
		}
	}
	t.Fatalf("no consumer %s on %s in %+v", consumer, queue, infos)
	return pgque.ConsumerInfo{}
}

// A running Consumer gets nothing while its queue is paused, although it is
// woken by the ticks, and gets everything at once on resume: it polls only
// every hour, so only resume's notification can wake it in time.
func TestPauseConsumer(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	logOpt, idle := consumerLoggerIdle(t)
	handled := make(chan int64, 100)
	c := client.NewConsumer("q", "c", pgque.WithPollInterval(time.Hour), logOpt)
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		// The handler runs on the consumer's loop: the next idle record
		// comes after this message.
		consumerDrain(idle)
		handled <- msg.MsgID
		return nil
	})
	run := consumerRun(t, c)
	consumerListenerPID(t, client.Pool(), 0)

	first := pauseSend(t, client, "q", 1)
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	if got := consumerAwait(t, handled, consumerTimeout, "event before the pause"); got != first[0] {
		t.Fatalf("handled %d, want %d", got, first[0])
	}
	consumerAwait(t, idle, consumerTimeout, "idle after the first event")

	if ok, err := client.PauseQueue(ctx, "q"); err != nil || !ok {
		t.Fatalf("PauseQueue = %v, %v; want true", ok, err)
	}
	paused := pauseSend(t, client, "q", 3)
	consumerDrain(idle)
	// The tick's notification wakes the consumer; it receives nothing and
	// goes idle again.
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, idle, consumerTimeout, "idle after the tick while paused")
	select {
	case id := <-handled:
		t.Fatalf("handled %d while the queue was paused", id)
	default:
	}
	ci := pauseConsumerInfo(t, client, "q", "c")
	if ci.PendingEvents != 3 || ci.CurrentBatch != nil || ci.Lag <= 0 {
		t.Errorf("while paused: pending %d, batch %v, lag %v; want 3, none, > 0", ci.PendingEvents, ci.CurrentBatch, ci.Lag)
	}

	resumed := time.Now()
	if ok, err := client.ResumeQueue(ctx, "q"); err != nil || !ok {
		t.Fatalf("ResumeQueue = %v, %v; want true", ok, err)
	}
	for i, want := range paused {
		if got := consumerAwait(t, handled, consumerTimeout, "event sent while paused"); got != want {
			t.Fatalf("event %d: handled %d, want %d", i, got, want)
		}
	}
	t.Logf("delivered %d events %v after resume", len(paused), time.Since(resumed))
	// Stopping lets the consumer acknowledge what it handled.
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v", err)
	}
	consumerNoMore(t, client, "q", "c")
}

// A batch open when the queue is paused: no further piece is handed out, what
// was received can be acknowledged, and after resume the rest follows in the
// same batch.
func TestPauseOpenBatch(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	ids := pauseSend(t, client, "q", 3)
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "q", "c", 1)
	if err != nil || len(msgs) != 1 || msgs[0].MsgID != ids[0] {
		t.Fatalf("Receive = %+v, %v; want event %d", msgs, err, ids[0])
	}
	batch := msgs[0].BatchID // the piece, which Ack takes
	open := pauseConsumerInfo(t, client, "q", "c").CurrentBatch
	if open == nil {
		t.Fatal("no open batch after Receive")
	}

	if ok, err := client.PauseQueue(ctx, "q"); err != nil || !ok {
		t.Fatalf("PauseQueue = %v, %v; want true", ok, err)
	}
	if ok, err := client.PauseQueue(ctx, "q"); err != nil || ok {
		t.Fatalf("PauseQueue again = %v, %v; want false", ok, err)
	}
	q, err := client.Queue(ctx, "q")
	if err != nil || !q.Paused || q.PausedAt == nil || time.Since(*q.PausedAt) < 0 {
		t.Fatalf("Queue = %+v, %v; want paused", q, err)
	}
	if msgs, err := client.Receive(ctx, "q", "c", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive while paused = %+v, %v; want nothing", msgs, err)
	}
	if ok, err := client.AckResult(ctx, batch); err != nil || !ok {
		t.Fatalf("Ack while paused = %v, %v; want true", ok, err)
	}
	if msgs, err := client.Receive(ctx, "q", "c", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("Receive while paused after ack = %+v, %v; want nothing", msgs, err)
	}
	ci := pauseConsumerInfo(t, client, "q", "c")
	if ci.CurrentBatch == nil || *ci.CurrentBatch != *open || ci.BatchAge == nil || *ci.BatchAge < 0 {
		t.Fatalf("consumer while paused = %+v; want batch %d open, with an age", ci, *open)
	}

	if ok, err := client.ResumeQueue(ctx, "q"); err != nil || !ok {
		t.Fatalf("ResumeQueue = %v, %v; want true", ok, err)
	}
	if ok, err := client.ResumeQueue(ctx, "q"); err != nil || ok {
		t.Fatalf("ResumeQueue again = %v, %v; want false", ok, err)
	}
	msgs, err = client.Receive(ctx, "q", "c", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	for _, m := range msgs {
		got = append(got, m.MsgID)
	}
	if !slices.Equal(got, ids[1:]) {
		t.Fatalf("after resume received %v, want %v", got, ids[1:])
	}
	if ci := pauseConsumerInfo(t, client, "q", "c"); ci.CurrentBatch == nil || *ci.CurrentBatch != *open {
		t.Errorf("after resume: %+v; want the same batch %d", ci, *open)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("Ack = %v, %v", ok, err)
	}
	if q, err := client.Queue(ctx, "q"); err != nil || q.Paused || q.PausedAt != nil {
		t.Fatalf("Queue = %+v, %v; want running", q, err)
	}
	consumerNoMore(t, client, "q", "c")
}

func TestPauseErrors(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"pause unknown queue", second(client.PauseQueue(ctx, "nope")), pgque.ErrQueueNotFound},
		{"resume unknown queue", second(client.ResumeQueue(ctx, "nope")), pgque.ErrQueueNotFound},
		{"pause bad name", second(client.PauseQueue(ctx, "bad name")), pgque.ErrInvalidArgument},
		{"resume empty name", second(client.ResumeQueue(ctx, "")), pgque.ErrInvalidArgument},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}
