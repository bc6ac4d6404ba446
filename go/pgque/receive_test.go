package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// sendNumbered sends n events with payloads 0..n-1 in chunks of one
// transaction each, and ticks.
func sendNumbered(t *testing.T, client *pgque.Client, q string, n, chunk int) {
	t.Helper()
	ctx := context.Background()
	for start := 0; start < n; start += chunk {
		var events []pgque.Event
		for i := start; i < min(start+chunk, n); i++ {
			events = append(events, pgque.Event{Type: "n", Payload: i})
		}
		if _, err := client.SendBatch(ctx, q, events); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.ForceTick(ctx, q); err != nil {
		t.Fatal(err)
	}
}

// drainNumbered receives pieces of max until none come, acking each, and
// checks that payloads 0..n-1 came once each, in order.
func drainNumbered(t *testing.T, client *pgque.Client, q, c string, n, max int) {
	t.Helper()
	ctx := context.Background()
	next := 0
	for {
		msgs, err := client.Receive(ctx, q, c, max)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) == 0 {
			break
		}
		if len(msgs) > max {
			t.Fatalf("got %d messages, asked for %d", len(msgs), max)
		}
		for _, m := range msgs {
			if got := string(m.Payload); got != strconv.Itoa(next) {
				t.Fatalf("message %d: payload %s, want %d", next, got, next)
			}
			if m.BatchID != msgs[0].BatchID || m.Type != "n" {
				t.Fatalf("message %d: batch %d type %q, want batch %d type n", next, m.BatchID, m.Type, msgs[0].BatchID)
			}
			next++
		}
		if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
			t.Fatalf("ack: %v %v", ok, err)
		}
	}
	if next != n {
		t.Fatalf("received %d messages, want %d", next, n)
	}
}

// Pieces of 1000 and more are read straight from the event tables
// (receive_query): the same messages, in the same order, as receive()
// hands out, across several batches and a piece that ends a batch exactly.
// The login role may not call receive() at all, so a piece that went the
// other way would fail.
func TestReceiveDirect(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t, "q", "direct", "small")
	if _, err := admin.Pool().Exec(ctx,
		`REVOKE EXECUTE ON FUNCTION pgque.receive(text, text, int, text, interval) FROM pgque_reader`); err != nil {
		t.Fatal(err)
	}
	reader := pgque.New(loginPool(t, admin, "reader", "pgque_reader"))
	// A batch that ends with a full piece, then one that ends with a short one.
	sendNumbered(t, admin, "q", 2000, 500)
	drainNumbered(t, reader, "q", "direct", 2000, 1000)
	sendNumbered(t, admin, "q", 2500, 700)
	drainNumbered(t, reader, "q", "direct", 2500, 1000)
	var batches int
	if err := admin.Pool().QueryRow(ctx, `SELECT last_tick FROM pgque.get_consumer_info('q', 'direct')`).
		Scan(&batches); err != nil || batches < 3 {
		t.Fatalf("consumer at tick %d (%v), want both batches finished", batches, err)
	}
	// A message of a piece read straight can be nacked; one after the piece
	// cannot (it was not handed out).
	sendNumbered(t, admin, "q", 1500, 1500)
	msgs, err := reader.Receive(ctx, "q", "direct", 1000)
	if err != nil || len(msgs) != 1000 {
		t.Fatalf("piece: %d messages, %v", len(msgs), err)
	}
	if out, err := reader.NackResult(ctx, msgs[0].BatchID, msgs[999], 0, "x"); err != nil || out != pgque.OutcomeRetry {
		t.Fatalf("nack of the piece's last message: %q %v", out, err)
	}
	after := msgs[999]
	after.MsgID++
	if err := reader.Nack(ctx, msgs[0].BatchID, after, 0, "x"); !errors.Is(err, pgque.ErrMessageNotFound) {
		t.Fatalf("nack of a message after the piece: %v, want ErrMessageNotFound", err)
	}
	// Small pieces go through receive(), which this role may not call.
	if _, err := reader.Receive(ctx, "q", "small", 10); !errors.Is(err, pgque.ErrPermissionDenied) {
		t.Fatalf("Receive(10) without EXECUTE on receive(): %v, want ErrPermissionDenied", err)
	}
}

// A role that may not read the event tables (a tenant) gets big pieces
// through receive(), all the same.
func TestReceiveDirectFallback(t *testing.T) {
	ctx := context.Background()
	admin := newClient(t, "acme.q", "c")
	sendNumbered(t, admin, "acme.q", 2500, 1000)
	tenant := loginPool(t, admin, "acme", "pgque_tenant")
	if _, err := admin.GrantAccess(ctx, role(tenant), pgque.PrivilegeReceive, pgque.Scope{Namespace: "acme"}); err != nil {
		t.Fatal(err)
	}
	drainNumbered(t, pgque.New(tenant), "acme.q", "c", 2500, 1000)
}

// A worker's big pieces are read straight as well, and a piece that is not
// acked comes again whole.
func TestReceiveDirectWorker(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	sendNumbered(t, client, "q", 3000, 1000)
	first, err := client.ReceiveAsWorker(ctx, "q", "c", "w1", 1500, time.Minute)
	if err != nil || len(first) == 0 {
		t.Fatalf("first piece: %d messages, %v", len(first), err)
	}
	again, err := client.ReceiveAsWorker(ctx, "q", "c", "w1", 1500, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(ids(again)) != fmt.Sprint(ids(first)) {
		t.Fatalf("unacked piece came back as %d messages from %d, want the same %d", len(again), again[0].MsgID, len(first))
	}
	seen := map[int64]bool{}
	for msgs := first; len(msgs) > 0; {
		for _, m := range msgs {
			if seen[m.MsgID] {
				t.Fatalf("message %d twice", m.MsgID)
			}
			seen[m.MsgID] = true
		}
		if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
			t.Fatalf("ack: %v %v", ok, err)
		}
		if msgs, err = client.ReceiveAsWorker(ctx, "q", "c", "w1", 1500, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	if len(seen) != 3000 {
		t.Fatalf("worker received %d messages, want 3000", len(seen))
	}
}

func ids(msgs []pgque.Message) []int64 {
	out := make([]int64, len(msgs))
	for i, m := range msgs {
		out[i] = m.MsgID
	}
	return out
}

// A Consumer far behind grows its pieces (reading them straight from the
// event tables) and still handles every message once, in order.
func TestConsumerCatchUp(t *testing.T) {
	const n = 30_000
	client := newClient(t, "q", "c")
	sendNumbered(t, client, "q", n, 5000)
	ctx, stop := context.WithTimeout(context.Background(), time.Minute)
	defer stop()
	c := client.NewConsumer("q", "c")
	next := 0
	c.Handle("n", func(_ context.Context, m pgque.Message) error {
		if got := string(m.Payload); got != strconv.Itoa(next) {
			t.Errorf("message %d: payload %s", next, got)
		}
		if next++; next == n {
			stop()
		}
		return nil
	})
	if err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if next != n {
		t.Fatalf("handled %d messages, want %d", next, n)
	}
	infos, err := client.Consumers(context.Background(), "q")
	if err != nil || len(infos) != 1 {
		t.Fatalf("consumers: %v %v", infos, err)
	}
	if infos[0].PendingEvents != 0 {
		t.Fatalf("%d events left unacknowledged", infos[0].PendingEvents)
	}
}
