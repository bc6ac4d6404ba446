package pgque_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
)

// On a database without pgque every call fails with ErrNotInstalled, as an
// *Error naming the call, whatever it would do with an engine.
func TestNotInstalled(t *testing.T) {
	ctx := context.Background()
	c := pgque.New(emptyDatabase(t))
	calls := []struct {
		op   string
		call func() error
	}{
		{"send", func() error { _, err := c.Send(ctx, "q", pgque.Event{Type: "t"}); return err }},
		{"send_batch", func() error { _, err := c.SendBatch(ctx, "q", []pgque.Event{{Type: "t"}}); return err }},
		{"receive", func() error { _, err := c.Receive(ctx, "q", "c", 10); return err }},
		{"receive as worker", func() error { _, err := c.ReceiveAsWorker(ctx, "q", "c", "w", 10, time.Minute); return err }},
		{"ack", func() error { return c.Ack(ctx, 1) }},
		{"nack", func() error { return c.Nack(ctx, 1, pgque.Message{MsgID: 1, BatchID: 1}, 0, "r") }},
		{"heartbeat", func() error { _, err := c.Heartbeat(ctx, 1, time.Minute); return err }},
		{"peek", func() error { _, err := c.Peek(ctx, "q", "c", 10); return err }},
		{"create queue", func() error { _, err := c.CreateQueue(ctx, "q"); return err }},
		{"drop queue", func() error { return c.DropQueue(ctx, "q", false) }},
		{"pause queue", func() error { _, err := c.PauseQueue(ctx, "q"); return err }},
		{"subscribe", func() error { _, err := c.Subscribe(ctx, "q", "c"); return err }},
		{"queue info", func() error { _, err := c.Queue(ctx, "q"); return err }},
		{"queues", func() error { _, err := c.Queues(ctx); return err }},
		{"consumers", func() error { _, err := c.Consumers(ctx, "q"); return err }},
		{"workers", func() error { _, err := c.Workers(ctx, "q", "c"); return err }},
		{"tables", func() error { _, err := c.Tables(ctx); return err }},
		{"dead letters", func() error { _, err := c.DeadLetters(ctx, "q", 10); return err }},
		{"find events", func() error { _, err := c.FindEvents(ctx, "q", pgque.FindOptions{}); return err }},
		{"schedules", func() error { _, err := c.Schedules(ctx); return err }},
		{"tick", func() error { _, err := c.Tick(ctx); return err }},
		{"maint", func() error { _, err := c.Maint(ctx); return err }},
		{"access", func() error { _, err := c.Access(ctx); return err }},
	}
	for _, tc := range calls {
		err := tc.call()
		var pqErr *pgque.Error
		if !errors.Is(err, pgque.ErrNotInstalled) || !errors.As(err, &pqErr) || pqErr.Code != "3F000" {
			t.Errorf("%s without pgque: %v; want ErrNotInstalled (SQLSTATE 3F000)", tc.op, err)
		}
	}
}
