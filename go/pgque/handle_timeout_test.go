package pgque_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// HandleTimeout overrides WithHandlerTimeout for one type, both ways: a
// bound where the consumer has a longer one, none where it has one.  With
// max_retries 0 a timed-out message is a dead letter whose reason names
// its bound.
func TestConsumerHandleTimeout(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	consumerQueueConfig(t, client, "q", "max_retries", "0")
	deadlines := make(chan string, 10)
	// note records whether the handler's context has a deadline; wait
	// also blocks until its context ends.
	note := func(ctx context.Context, msg pgque.Message) error {
		_, ok := ctx.Deadline()
		deadlines <- fmt.Sprintf("%s:%v", msg.Type, ok)
		return nil
	}
	wait := func(ctx context.Context, msg pgque.Message) error {
		_ = note(ctx, msg)
		<-ctx.Done()
		return ctx.Err()
	}
	c := client.NewConsumer("q", "c", fastTicker(), consumerLogger(t), pgque.WithHandlerTimeout(time.Hour))
	c.Handle("short", wait, pgque.HandleTimeout(20*time.Millisecond))
	c.Handle("unbounded", note, pgque.HandleTimeout(0))
	c.Handle("wide", note)
	run := consumerRun(t, c)
	ids, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "short", Payload: 1}, {Type: "unbounded", Payload: 2},
		{Type: "wide", Payload: 3}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := range 3 {
		got = append(got, consumerAwait(t, deadlines, consumerTimeout, fmt.Sprintf("call %d", i)))
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v", err)
	}
	if want := "[short:true unbounded:false wide:true]"; fmt.Sprint(got) != want {
		t.Errorf("deadlines = %v, want %s", got, want)
	}
	dls, err := client.DeadLetters(ctx, "q", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].Message.MsgID != ids[0] || dls[0].Reason == nil ||
		*dls[0].Reason != "handler timed out after 20ms: context deadline exceeded" {
		t.Errorf("dead letters = %+v, want message %d timed out after 20ms", dls, ids[0])
	}
}

// Handle panics for a negative HandleTimeout.
func TestHandleTimeoutNegative(t *testing.T) {
	client := newClient(t, "q", "c")
	c := client.NewConsumer("q", "c")
	defer func() {
		if recover() == nil {
			t.Error("Handle with a negative HandleTimeout did not panic")
		}
	}()
	c.Handle("x", func(context.Context, pgque.Message) error { return nil }, pgque.HandleTimeout(-time.Second))
}
