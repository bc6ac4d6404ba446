package pgquetest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

var srv *pgquetest.Server

func TestMain(m *testing.M) {
	var err error
	srv, err = pgquetest.Start(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	code := m.Run()
	srv.Cleanup()
	os.Exit(code)
}

// recorder is a testing.TB whose Fatalf records the failure and stops the
// assertion (as Fatalf stops a test), so that a test can check that an
// assertion fails, and how.
type recorder struct {
	testing.TB
	failure string
}

type stopped struct{}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.failure = fmt.Sprintf(format, args...)
	panic(stopped{})
}

// fails runs f with a recorder and returns its failure ("" if none).
func fails(t *testing.T, f func(tb testing.TB)) (failure string) {
	t.Helper()
	r := &recorder{TB: t}
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stopped); !ok {
				panic(p)
			}
			failure = r.failure
		}
	}()
	f(r)
	return ""
}

func newClient(t *testing.T, queues ...string) *pgque.Client {
	t.Helper()
	client := pgque.New(srv.NewPool(t))
	for _, q := range queues {
		if _, err := client.CreateQueue(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	return client
}

func TestRequireSent(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "orders", "other")
	id, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: map[string]int{"id": 7}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Send(ctx, "other", pgque.Event{Type: "order.paid", Payload: 1}); err != nil {
		t.Fatal(err)
	}
	evs := pgquetest.RequireSent(ctx, t, client, "orders", "order.created")
	if len(evs) != 1 || evs[0].MsgID != id || evs[0].Payload != `{"id":7}` || evs[0].DeliverAt != nil {
		t.Errorf("RequireSent = %+v; want event %d", evs, id)
	}
	pgquetest.RequireSent(ctx, t, client, "orders", "")
	pgquetest.RequireNotSent(ctx, t, client, "orders", "order.paid") // sent to another queue

	if f := fails(t, func(tb testing.TB) { pgquetest.RequireSent(ctx, tb, client, "orders", "order.paid") }); !strings.Contains(f,
		`want an event of type "order.paid" to queue "orders", none was sent`) {
		t.Errorf("RequireSent of what was not sent: failure %q", f)
	}
	if f := fails(t, func(tb testing.TB) { pgquetest.RequireNotSent(ctx, tb, client, "orders", "") }); !strings.Contains(f,
		fmt.Sprintf(`want no event to queue "orders", got event %d (type "order.created", payload {"id":7})`, id)) {
		t.Errorf("RequireNotSent of what was sent: failure %q", f)
	}
	if f := fails(t, func(tb testing.TB) { pgquetest.RequireSent(ctx, tb, client, "nope", "") }); !strings.Contains(f,
		"looking for an event to queue \"nope\"") || !strings.Contains(f, "does not exist") {
		t.Errorf("RequireSent to an unknown queue: failure %q", f)
	}
	// A delayed event counts, with its due time.
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "reminder", Payload: 1}, pgque.WithDelay(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if evs := pgquetest.RequireSent(ctx, t, client, "orders", "reminder"); evs[0].DeliverAt == nil {
		t.Errorf("delayed event without DeliverAt: %+v", evs[0])
	}
}

// What a transaction sent is seen inside it only, and gone after a
// rollback.
func TestRequireSentTx(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "outbox")
	if _, err := client.Send(ctx, "outbox", pgque.Event{Type: "before", Payload: 1}); err != nil {
		t.Fatal(err)
	}
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)                                       //nolint:errcheck
	pgquetest.RequireNotSentTx(ctx, t, client, tx, "outbox", "") // "before" was another transaction's
	if _, err := client.SendTx(ctx, tx, "outbox", pgque.Event{Type: "user.created", Payload: map[string]string{"name": "ann"}}); err != nil {
		t.Fatal(err)
	}
	evs := pgquetest.RequireSentTx(ctx, t, client, tx, "outbox", "user.created")
	if len(evs) != 1 || evs[0].Payload != `{"name":"ann"}` {
		t.Errorf("RequireSentTx = %+v", evs)
	}
	if f := fails(t, func(tb testing.TB) { pgquetest.RequireSentTx(ctx, tb, client, tx, "outbox", "before") }); !strings.Contains(f,
		`want an event of type "before" to queue "outbox" in this transaction, none was sent`) {
		t.Errorf("RequireSentTx of another transaction's event: failure %q", f)
	}
	pgquetest.RequireNotSent(ctx, t, client, "outbox", "user.created") // not committed
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	pgquetest.RequireNotSent(ctx, t, client, "outbox", "user.created")
	if _, err := client.FindEvents(ctx, "outbox", pgque.FindOptions{ThisTransaction: true}); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("FindEvents with ThisTransaction: %v; want ErrInvalidArgument", err)
	}
}

func TestWork(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "jobs")
	if _, err := client.Subscribe(ctx, "jobs", "worker"); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []string{"ok", "fail", "other", "ok"} {
		if _, err := client.Send(ctx, "jobs", pgque.Event{Type: typ, Payload: typ}); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	handlers := map[string]pgque.HandlerFunc{
		"ok":   func(_ context.Context, m pgque.Message) error { seen = append(seen, "ok"); return nil },
		"fail": func(context.Context, pgque.Message) error { return errors.New("boom") },
		"*":    func(_ context.Context, m pgque.Message) error { seen = append(seen, "*:"+m.Type); return nil },
	}
	w := pgquetest.Work(ctx, t, client, "jobs", "worker", handlers)
	if len(w.Handled) != 3 || len(w.Failed) != 1 || w.Failed[0].Message.Type != "fail" ||
		w.Failed[0].Err.Error() != "boom" || strings.Join(seen, ",") != "ok,*:other,ok" {
		t.Fatalf("Work = %+v, handlers saw %v", w, seen)
	}
	// Everything was settled: nothing is pending, and the failure waits
	// as a retry.
	if w := pgquetest.Work(ctx, t, client, "jobs", "worker", handlers); len(w.Handled)+len(w.Failed) != 0 {
		t.Errorf("second Work = %+v; want nothing", w)
	}
	c, err := client.Consumers(ctx, "jobs")
	if err != nil || len(c) != 1 || c[0].RetryPending != 1 {
		t.Errorf("consumers after Work: %+v, %v; want one retry pending", c, err)
	}
	// A message without a handler, and a consumer not subscribed, fail
	// the test.
	if _, err := client.Send(ctx, "jobs", pgque.Event{Type: "stray", Payload: 1}); err != nil {
		t.Fatal(err)
	}
	if f := fails(t, func(tb testing.TB) {
		pgquetest.Work(ctx, tb, client, "jobs", "worker", map[string]pgque.HandlerFunc{"ok": handlers["ok"]})
	}); !strings.Contains(f, `no handler for message`) || !strings.Contains(f, `of type "stray"`) {
		t.Errorf("Work without a handler: failure %q", f)
	}
	if f := fails(t, func(tb testing.TB) { pgquetest.Work(ctx, tb, client, "jobs", "nobody", handlers) }); !strings.Contains(f,
		"subscribe the consumer before") {
		t.Errorf("Work of an unsubscribed consumer: failure %q", f)
	}
}
