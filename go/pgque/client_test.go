package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/pgque/pgque/go/pgque"
)

func ptr[T any](v T) *T { return &v }

func TestSendReceiveAck(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "orders", "c")
	type order struct {
		ID int `json:"id"`
	}
	id1, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: order{ID: 1}})
	if err != nil {
		t.Fatal(err)
	}
	id2, err := client.Send(ctx, "orders", pgque.Event{Type: "raw", Payload: json.RawMessage(`{"x": [1,2]}`),
		Extra1: ptr("e1"), Extra4: ptr("e4")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "orders", "c", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].MsgID != id1 || msgs[1].MsgID != id2 {
		t.Fatalf("received %+v, want ids %d, %d", msgs, id1, id2)
	}
	var got order
	if err := json.Unmarshal([]byte(msgs[0].Payload), &got); err != nil || got.ID != 1 || msgs[0].Type != "order.created" {
		t.Errorf("first message = %s %s, %v", msgs[0].Type, msgs[0].Payload, err)
	}
	if string(msgs[1].Payload) != `{"x": [1,2]}` || *msgs[1].Extra1 != "e1" || msgs[1].Extra2 != nil || *msgs[1].Extra4 != "e4" {
		t.Errorf("second message = %+v", msgs[1])
	}
	if msgs[0].RetryCount != nil || msgs[0].CreatedAt.IsZero() || msgs[0].BatchID == 0 {
		t.Errorf("first message = %+v", msgs[0])
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || ok {
		t.Fatalf("second ack = %v, %v; want false", ok, err)
	}
	if msgs, err := client.Receive(ctx, "orders", "c", 10); err != nil || len(msgs) != 0 {
		t.Fatalf("after ack: %v, %v", msgs, err)
	}
}

func TestSendBatch(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	for _, events := range [][]pgque.Event{
		{{Type: "a", Payload: 1}, {Type: "a", Payload: 2}, {Type: "a", Payload: 3}},                   // one type: send_batch
		{{Type: "a", Payload: 4}, {Type: "b", Payload: 5}, {Type: "a", Payload: 6, Extra2: ptr("x")}}, // mixed
	} {
		ids, err := client.SendBatch(ctx, "q", events)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		msgs, err := client.Receive(ctx, "q", "c", 100)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != len(events) {
			t.Fatalf("received %d messages, want %d", len(msgs), len(events))
		}
		byID := map[int64]pgque.Message{}
		for _, m := range msgs {
			byID[m.MsgID] = m
		}
		for i, ev := range events {
			m := byID[ids[i]]
			want, _ := json.Marshal(ev.Payload)
			if m.Type != ev.Type || string(m.Payload) != string(want) {
				t.Errorf("id %d: got %s %s, want %s %s", ids[i], m.Type, m.Payload, ev.Type, want)
			}
		}
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
	if ids, err := client.SendBatch(ctx, "q", nil); err != nil || ids != nil {
		t.Errorf("empty batch = %v, %v", ids, err)
	}
}

func TestSendTx(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	for _, commit := range []bool{false, true} {
		tx, err := client.Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := client.SendTx(ctx, tx, "q", pgque.Event{Type: "t", Payload: commit}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "q", "c", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || string(msgs[0].Payload) != "true" {
		t.Fatalf("received %+v, want only the committed event", msgs)
	}
}

func TestNack(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	// One retry, due at once (a zero backoff base), then dead.
	for param, value := range map[string]string{"max_retries": "1", "retry_backoff_base": "0"} {
		if err := client.SetQueueConfig(ctx, "q", param, value); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: "x"}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []pgque.Outcome{pgque.OutcomeRetry, pgque.OutcomeDead} {
		if _, err := client.Maint(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := client.ForceTick(ctx, "q"); err != nil {
			t.Fatal(err)
		}
		msgs, err := client.Receive(ctx, "q", "c", 10)
		if err != nil || len(msgs) != 1 {
			t.Fatalf("round %d: %v, %v", i, msgs, err)
		}
		if (i == 0) != (msgs[0].RetryCount == nil) {
			t.Errorf("round %d: retry count %v", i, msgs[0].RetryCount)
		}
		out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, "boom")
		if err != nil || out != want {
			t.Fatalf("round %d: nack = %q, %v; want %q", i, out, err, want)
		}
		if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
			t.Fatal(err)
		}
	}
	dls, err := client.DeadLetters(ctx, "q", 10)
	if err != nil || len(dls) != 1 || *dls[0].Reason != "boom" || dls[0].Consumer != "c" || *dls[0].Message.RetryCount != 1 {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	if _, err := client.ReplayDeadLetter(ctx, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	if n, err := client.PurgeDeadLetters(ctx, "q", 0); err != nil || n != 0 {
		t.Errorf("purge = %d, %v; want 0 after replay", n, err)
	}
}

func TestErrors(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"send to unknown queue", second(client.Send(ctx, "nope", pgque.Event{Type: "t"})), pgque.ErrQueueNotFound},
		{"bad queue name", second(client.CreateQueue(ctx, "bad name")), pgque.ErrInvalidArgument},
		{"receive unknown consumer", second(client.Receive(ctx, "q", "nobody", 10)), pgque.ErrConsumerNotFound},
		{"receive max 0", second(client.Receive(ctx, "q", "c", 0)), pgque.ErrInvalidArgument},
		{"nack unknown batch", client.Nack(ctx, 12345, pgque.Message{MsgID: 1}, 0, ""), pgque.ErrBatchNotFound},
		{"nack negative delay", client.Nack(ctx, 1, pgque.Message{MsgID: 1}, -1, ""), pgque.ErrInvalidArgument},
		{"invalid raw JSON", second(client.Send(ctx, "q", pgque.Event{Type: "t", Payload: []byte("{nope")})), pgque.ErrInvalidArgument},
		{"unmarshallable payload", second(client.Send(ctx, "q", pgque.Event{Type: "t", Payload: make(chan int)})), pgque.ErrInvalidArgument},
		{"drop queue with consumers", client.DropQueue(ctx, "q", false), pgque.ErrQueueHasConsumers},
		{"replay unknown dead letter", second(client.ReplayDeadLetter(ctx, 999)), pgque.ErrDeadLetterNotFound},
		{"unknown queue info", second(client.Queue(ctx, "nope")), pgque.ErrQueueNotFound},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	// The server's message survives the wrapping.
	_, err := client.Send(ctx, "nope", pgque.Event{Type: "t"})
	var pe *pgque.Error
	if !errors.As(err, &pe) || pe.Code != "PQ001" || pe.Err.Message == "" {
		t.Errorf("send to unknown queue: %#v", err)
	}
}

func second[T any](_ T, err error) error { return err }

// An event sent without a type has DefaultEventType, as with the PgQue
// client, by Send and by SendBatch.
func TestSendDefaultType(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if _, err := client.Send(ctx, "q", pgque.Event{Payload: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.SendBatch(ctx, "q", []pgque.Event{{Payload: 2}, {Type: "x", Payload: 3}}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	msgs, err := client.Receive(ctx, "q", "c", 10)
	if err != nil || len(msgs) != 3 || msgs[0].Type != "default" || msgs[1].Type != "default" || msgs[2].Type != "x" {
		t.Fatalf("received %+v, %v; want types default, default, x", msgs, err)
	}
}
