package pgque_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
)

// effectsSQL is the table the handlers of these tests write their effects
// to, in the transaction of their message.
const effectsSQL = `CREATE TABLE effects (msg_id bigint NOT NULL, kind text NOT NULL)`

// effects lists the committed effects, "kind" per message, in msg_id order.
func effects(t *testing.T, client *pgque.Client) []string {
	t.Helper()
	rows, err := client.Pool().Query(context.Background(), `SELECT kind FROM effects ORDER BY msg_id, kind`)
	if err != nil {
		t.Fatal(err)
	}
	kinds, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return kinds
}

// waitFor polls cond, the committed state of the database, until it holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(consumerTimeout); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, consumerTimeout)
		}
	}
}

// A Consumer WithTransaction commits each handler's writes with the
// acknowledgement of its message: a handler that fails (error, panic, or a
// statement of its own that failed) has its writes undone and its message
// nacked, and the others' writes stay; an outbox send commits with them.
func TestConsumerTransaction(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if _, err := client.CreateQueue(ctx, "out"); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Pool().Exec(ctx, effectsSQL); err != nil {
		t.Fatal(err)
	}
	logs := newMatchLog("nothing to acknowledge")
	c := client.NewConsumer("q", "c", fastTicker(), pgque.WithTransaction(), pgque.WithRetryAfter(3600),
		pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	write := func(ctx context.Context, m pgque.Message) error {
		_, err := pgque.TxFromContext(ctx).Exec(ctx, `INSERT INTO effects VALUES ($1, $2)`, m.MsgID, m.Type)
		return err
	}
	var commitErr error
	c.Handle("ok", func(ctx context.Context, m pgque.Message) error {
		commitErr = pgque.TxFromContext(ctx).Commit(ctx)
		return write(ctx, m)
	})
	c.Handle("fail", func(ctx context.Context, m pgque.Message) error {
		if err := write(ctx, m); err != nil {
			return err
		}
		return errors.New("failed after writing")
	})
	c.Handle("panic", func(ctx context.Context, m pgque.Message) error {
		if err := write(ctx, m); err != nil {
			return err
		}
		panic("after writing")
	})
	c.Handle("swallow", func(ctx context.Context, m pgque.Message) error {
		if err := write(ctx, m); err != nil {
			return err
		}
		_, _ = pgque.TxFromContext(ctx).Exec(ctx, `SELECT 1/0`) // the error is dropped
		return nil
	})
	c.Handle("outbox", func(ctx context.Context, m pgque.Message) error {
		if err := write(ctx, m); err != nil {
			return err
		}
		_, err := client.SendTx(ctx, pgque.TxFromContext(ctx), "out", pgque.Event{Type: "sent", Payload: m.MsgID})
		return err
	})
	c.Handle("stolen", func(ctx context.Context, m pgque.Message) error {
		if err := write(ctx, m); err != nil {
			return err
		}
		// Another reader (here: the same piece, acked outside the
		// transaction) finishes the piece first.
		return client.Ack(ctx, m.BatchID)
	})
	consumerRun(t, c)

	if _, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "ok"}, {Type: "fail"}, {Type: "panic"},
		{Type: "swallow"}, {Type: "outbox"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the piece's commit", func() bool { return len(effects(t, client)) > 0 })
	if got := effects(t, client); !slices.Equal(got, []string{"ok", "outbox"}) {
		t.Errorf("committed effects %v, want [ok outbox]", got)
	}
	if !errors.Is(commitErr, pgque.ErrHandlerEndsTx) {
		t.Errorf("a handler's Commit = %v", commitErr)
	}
	ci, err := client.Consumer(ctx, "q", "c")
	if err != nil || ci.RetryPending != 3 {
		t.Errorf("consumer %+v, %v; want 3 retries pending (fail, panic, swallow)", ci, err)
	}
	if out, err := client.FindEvents(ctx, "out", pgque.FindOptions{}); err != nil || len(out) != 1 || out[0].Type != "sent" {
		t.Errorf("outbox: %+v, %v", out, err)
	}
	if !strings.Contains(logs.String(), "msg_id=4 type=swallow retry_count=0 reason=\"the handler returned nil after a statement of its own failed") {
		t.Errorf("the swallowed error is not the failure's reason:\n%s", logs.String())
	}

	// A piece acknowledged by another reader: the handler's writes go.
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "stolen"}); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, logs.seen, consumerTimeout, "the stolen piece")
	if got := effects(t, client); !slices.Equal(got, []string{"ok", "outbox"}) {
		t.Errorf("committed effects after the stolen piece %v, want [ok outbox]", got)
	}
}

// Outside a Consumer WithTransaction there is no transaction, and
// WithConcurrency above 1 is refused with it.
func TestConsumerTransactionOptions(t *testing.T) {
	ctx := context.Background()
	if pgque.TxFromContext(ctx) != nil {
		t.Error("TxFromContext of a bare context is not nil")
	}
	client := newClient(t, "q", "c")
	c := client.NewConsumer("q", "c", pgque.WithTransaction(), pgque.WithConcurrency(2))
	c.Handle("*", func(context.Context, pgque.Message) error { return nil })
	if err := c.Start(ctx); !errors.Is(err, pgque.ErrInvalidArgument) || !strings.Contains(err.Error(), "WithConcurrency(2)") {
		t.Errorf("Start with WithTransaction and WithConcurrency(2) = %v", err)
	}
	got := make(chan pgque.Message, 1)
	var tx pgx.Tx
	plain := client.NewConsumer("q", "c", fastTicker())
	plain.Handle("*", func(ctx context.Context, m pgque.Message) error {
		tx = pgque.TxFromContext(ctx)
		got <- m
		return nil
	})
	consumerRun(t, plain)
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "x"}); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, got, consumerTimeout, "the message")
	if tx != nil {
		t.Error("a plain consumer's handler has a transaction")
	}
}
