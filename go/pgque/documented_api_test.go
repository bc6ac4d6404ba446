package pgque_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// A program written exactly against the PgQue Go client's documented API
// (Connect, Close, Pool, Send, Receive, Ack, Nack, NewConsumer with Option,
// WithMaxMessages, WithPollInterval, WithRetryAfter in seconds, Handle,
// Start, HandlerFunc, Event, Message with its JSON tags): it must compile
// and run unchanged.  Set-up and ticks go through SQL, as that client's
// documentation does it.
func TestDocumentedAPI(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn, err := srv.NewDatabase(ctx)
	if err != nil {
		t.Fatal(err)
	}
	client, err := pgque.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var pool *pgxpool.Pool = client.Pool()
	sql := func(q string) {
		t.Helper()
		if _, err := pool.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	sql(`SELECT pgque.create_queue('orders')`)
	sql(`SELECT pgque.set_queue_config('orders', 'max_retries', '1')`)
	sql(`SELECT pgque.subscribe('orders', 'billing')`)
	sql(`SELECT pgque.subscribe('orders', 'mailer')`)

	var id int64
	id, err = client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 7}})
	if err != nil {
		t.Fatal(err)
	}
	sql(`SELECT pgque.force_tick('orders')`)

	// Receive, nack for redelivery in 1 s, finish the batch.
	var msgs []pgque.Message
	msgs, err = client.Receive(ctx, "orders", "billing", 10)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("Receive: %+v, %v", msgs, err)
	}
	m := msgs[0]
	if m.MsgID != id || m.Type != "order.created" || m.Payload != `{"id":7}` || m.RetryCount != nil || m.CreatedAt.IsZero() {
		t.Fatalf("message %+v", m)
	}
	var nackErr error = client.Nack(ctx, m.BatchID, m, 1, "card declined")
	if nackErr != nil {
		t.Fatal(nackErr)
	}
	var ackErr error = client.Ack(ctx, m.BatchID)
	if ackErr != nil {
		t.Fatal(ackErr)
	}
	// Redelivered with RetryCount 1 once due; nacked again it is past
	// max_retries and goes to the dead-letter table.
	deadline := time.Now().Add(30 * time.Second)
	for {
		sql(`SELECT pgque.maint_retry_events()`)
		sql(`SELECT pgque.force_tick('orders')`)
		if msgs, err = client.Receive(ctx, "orders", "billing", 10); err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the nacked message never came back")
		}
		time.Sleep(100 * time.Millisecond) // the retry is due 1 s after the nack: a time, not an event
	}
	if m := msgs[0]; m.MsgID != id || m.RetryCount == nil || *m.RetryCount != 1 {
		t.Fatalf("redelivered %+v", m)
	}
	if err := client.Nack(ctx, msgs[0].BatchID, msgs[0], 1, "still declined"); err != nil {
		t.Fatal(err)
	}
	if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
		t.Fatal(err)
	}
	var dead int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pgque.dlq_list('orders')`).Scan(&dead); err != nil || dead != 1 {
		t.Fatalf("dead letters: %d, %v", dead, err)
	}

	// A Consumer with the documented options; a handler error nacks.
	handled := make(chan pgque.Message, 10)
	var h pgque.HandlerFunc = func(ctx context.Context, msg pgque.Message) error {
		handled <- msg
		return nil
	}
	var opts = []pgque.Option{pgque.WithMaxMessages(100), pgque.WithPollInterval(20 * time.Millisecond), pgque.WithRetryAfter(1)}
	c := client.NewConsumer("orders", "mailer", opts...)
	c.Handle("*", h)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- c.Start(cctx) }()
	select {
	case got := <-handled:
		if got.MsgID != id || got.Payload != `{"id":7}` {
			t.Errorf("the consumer handled %+v", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the consumer handled nothing")
	}
	stop()
	if err := <-done; err != nil {
		t.Errorf("Start: %v", err)
	}

	// Message's JSON form is the documented one.
	b, err := json.Marshal(pgque.Message{MsgID: 1, BatchID: 2, Type: "t", Payload: `{"a":1}`})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"msg_id":1`, `"batch_id":2`, `"type":"t"`, `"payload":"{\"a\":1}"`, `"retry_count":null`,
		`"created_at":`, `"extra1":null`, `"extra4":null`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("Message JSON %s lacks %s", b, key)
		}
	}
	var _ pgque.Option = func(*pgque.Consumer) {}
}
