package pgque_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// consumerTimeout bounds every wait in these tests; it is a failure bound,
// never a measure.
const consumerTimeout = 10 * time.Second

// fastTicker ticks every few milliseconds and moves due retries quickly.
func fastTicker() pgque.Option {
	return pgque.WithTicker(pgque.WithTickInterval(5*time.Millisecond), pgque.WithMaintInterval(20*time.Millisecond))
}

// consumerLogger sends a consumer's log to the test's log.
func consumerLogger(t *testing.T) pgque.Option {
	opt, _ := consumerLoggerIdle(t)
	return opt
}

// consumerLoggerIdle is consumerLogger that also signals on idle each time
// the consumer logs that it is idle: it has received nothing and waits for a
// notification or its poll interval.  Drain idle after an event, then wait
// on it, to know the consumer went idle after that event.
func consumerLoggerIdle(t *testing.T) (opt pgque.Option, idle chan struct{}) {
	idle = make(chan struct{}, 1)
	h := slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})
	return pgque.WithLogger(slog.New(idleTap{h, idle})), idle
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// idleTap passes records on, signalling idle on the consumer's idle record.
type idleTap struct {
	slog.Handler
	idle chan struct{}
}

func (h idleTap) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "pgque consumer: idle" {
		select {
		case h.idle <- struct{}{}:
		default:
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h idleTap) WithAttrs(attrs []slog.Attr) slog.Handler {
	return idleTap{h.Handler.WithAttrs(attrs), h.idle}
}

func (h idleTap) WithGroup(name string) slog.Handler {
	return idleTap{h.Handler.WithGroup(name), h.idle}
}

// consumerDrain empties ch.
func consumerDrain[T any](ch <-chan T) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// runningConsumer is a Consumer whose Start runs in the background.
type runningConsumer struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Start returned
	err    error         // what Start returned
}

// consumerRun runs c.Start in the background until stop (or the end of the
// test).
func consumerRun(t *testing.T, c *pgque.Consumer) *runningConsumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &runningConsumer{cancel: cancel, done: make(chan struct{})}
	go func() {
		r.err = c.Start(ctx)
		close(r.done)
	}()
	t.Cleanup(func() {
		if err := r.stop(); err != nil {
			t.Errorf("Start = %v", err)
		}
	})
	return r
}

// wait returns what Start returned, or an error if it does not return in time.
func (r *runningConsumer) wait() error {
	select {
	case <-r.done:
		return r.err
	case <-time.After(consumerTimeout):
		return errors.New("Start did not return")
	}
}

// stop cancels Start's context and waits for it to return.
func (r *runningConsumer) stop() error {
	r.cancel()
	return r.wait()
}

// consumerAwait returns the next value from ch, failing the test after d.
func consumerAwait[T any](t *testing.T, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		var zero T
		t.Fatalf("%s: nothing within %v", what, d)
		return zero
	}
}

// consumerNoMore checks that the consumer has nothing left: no message
// unacknowledged, no retry pending, nothing dead-lettered.  It runs
// maintenance and ticks so that anything left would show.
func consumerNoMore(t *testing.T, client *pgque.Client, queue, consumer string) {
	t.Helper()
	ctx := context.Background()
	if _, err := client.Maint(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, queue); err != nil {
		t.Fatal(err)
	}
	if msgs, err := client.Receive(ctx, queue, consumer, 100); err != nil || len(msgs) != 0 {
		t.Errorf("%s still receives %+v, %v", consumer, msgs, err)
	}
	infos, err := client.Consumers(ctx, queue)
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range infos {
		if ci.Name == consumer && (ci.RetryPending != 0 || ci.DeadLetters != 0) {
			t.Errorf("%s: %d retries pending, %d dead letters; want none", consumer, ci.RetryPending, ci.DeadLetters)
		}
	}
}

// consumerQueueConfig sets queue parameters.
func consumerQueueConfig(t *testing.T, client *pgque.Client, queue string, params ...string) {
	t.Helper()
	for i := 0; i < len(params); i += 2 {
		if err := client.SetQueueConfig(context.Background(), queue, params[i], params[i+1]); err != nil {
			t.Fatal(err)
		}
	}
}

// consumerListenerPID returns the backend pid of the consumer's listening
// connection (other than not) once it has run LISTEN.  There is nothing to
// wait on for this but the server's state, so it polls pg_stat_activity.
func consumerListenerPID(t *testing.T, pool *pgxpool.Pool, not int32) int32 {
	t.Helper()
	deadline := time.Now().Add(consumerTimeout)
	for {
		var pid int32
		err := pool.QueryRow(context.Background(), `
			SELECT pid FROM pg_stat_activity
			 WHERE datname = current_database() AND application_name = 'pgque-listener'
			   AND state = 'idle' AND query LIKE 'LISTEN %' AND pid <> $1`, not).Scan(&pid)
		if err == nil {
			return pid
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no listening connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestConsumerQuickStart(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "orders")
	type order struct {
		ID int `json:"id"`
	}
	// Sent before the consumer exists: they are not ticked yet when Start
	// subscribes, so they are delivered to it.
	types := []string{"order.created", "order.paid", "order.created", "order.shipped"}
	var ids []int64
	for i, typ := range types {
		id, err := client.Send(ctx, "orders", pgque.Event{Type: typ, Payload: order{ID: i + 1}})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}

	type call struct {
		handler string
		msg     pgque.Message
		order   order
	}
	calls := make(chan call, 100)
	handler := func(name string) pgque.HandlerFunc {
		return func(ctx context.Context, msg pgque.Message) error {
			var o order
			if err := json.Unmarshal([]byte(msg.Payload), &o); err != nil {
				return err
			}
			calls <- call{name, msg, o}
			return nil
		}
	}
	c := client.NewConsumer("orders", "processor", fastTicker(), consumerLogger(t))
	c.Handle("order.created", handler("created"))
	c.Handle("*", handler("*"))
	run := consumerRun(t, c)
	for i, typ := range types {
		got := consumerAwait(t, calls, consumerTimeout, fmt.Sprintf("message %d", i))
		want := "*"
		if typ == "order.created" {
			want = "created"
		}
		// Concurrency 1: handled in delivery order.
		if got.msg.MsgID != ids[i] || got.msg.Type != typ || got.handler != want || got.order.ID != i+1 || got.msg.RetryCount != nil {
			t.Errorf("call %d = %s %+v (order %+v); want id %d, type %s, handler %s, order %d",
				i, got.handler, got.msg, got.order, ids[i], typ, want, i+1)
		}
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	if len(calls) != 0 {
		t.Errorf("%d more handler calls, want none", len(calls))
	}
	consumerNoMore(t, client, "orders", "processor")
}

// notifyProbe checks that a consumer is woken by NOTIFY.  Its handle is
// the consumer's handler; check sends events one at a time, each while the
// consumer is idle, and requires each to be handled within 2 s although the
// consumer polls only every 10 s.
type notifyProbe struct {
	handled chan int64
	idle    chan struct{}
}

func newNotifyProbe(t *testing.T) (*notifyProbe, pgque.Option) {
	logOpt, idle := consumerLoggerIdle(t)
	return &notifyProbe{handled: make(chan int64, 10), idle: idle}, logOpt
}

func (p *notifyProbe) handle(ctx context.Context, msg pgque.Message) error {
	// The handler runs on the consumer's loop, so no idle record is logged
	// meanwhile: the next one comes after this message.
	consumerDrain(p.idle)
	p.handled <- msg.MsgID
	return nil
}

func (p *notifyProbe) check(t *testing.T, client *pgque.Client, queue string, n int) {
	t.Helper()
	ctx := context.Background()
	for i := range n {
		if i > 0 {
			// The first event may have been received on the wake-up the
			// listener gives itself when it connects; the next ones are
			// sent once the consumer waits again.
			consumerAwait(t, p.idle, consumerTimeout, "idle consumer")
		}
		id, err := client.Send(ctx, queue, pgque.Event{Type: "t", Payload: i})
		if err != nil {
			t.Fatal(err)
		}
		if got := consumerAwait(t, p.handled, 2*time.Second, fmt.Sprintf("event %d", i)); got != id {
			t.Fatalf("handled %d, want %d", got, id)
		}
	}
}

func TestConsumerNotifyWakeUp(t *testing.T) {
	client := newClient(t, "app.events-1") // '.' and '-' need a quoted channel name
	probe, logOpt := newNotifyProbe(t)
	c := client.NewConsumer("app.events-1", "c", pgque.WithPollInterval(10*time.Second), fastTicker(), logOpt)
	c.Handle("*", probe.handle)
	consumerRun(t, c)
	consumerListenerPID(t, client.Pool(), 0)
	probe.check(t, client, "app.events-1", 3)
}

func TestConsumerRetry(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	// Retries are due at once; the ticker ticks for moved retries by itself.
	consumerQueueConfig(t, client, "q", "retry_backoff_base", "0")

	type call struct {
		typ   string
		retry *int
	}
	calls := make(chan call, 100)
	c := client.NewConsumer("q", "c", fastTicker(), consumerLogger(t))
	c.Handle("ok", func(ctx context.Context, msg pgque.Message) error {
		calls <- call{msg.Type, msg.RetryCount}
		return nil
	})
	c.Handle("fail", func(ctx context.Context, msg pgque.Message) error {
		calls <- call{msg.Type, msg.RetryCount}
		if msg.RetryCount == nil {
			return errors.New("not yet")
		}
		return nil
	})
	c.Handle("panic", func(ctx context.Context, msg pgque.Message) error {
		calls <- call{msg.Type, msg.RetryCount}
		if msg.RetryCount == nil {
			panic("not yet")
		}
		return nil
	})
	run := consumerRun(t, c)
	// One transaction, so one batch.
	if _, err := client.SendBatch(ctx, "q", []pgque.Event{
		{Type: "fail", Payload: 1}, {Type: "ok", Payload: 2}, {Type: "panic", Payload: 3},
	}); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for i := range 5 {
		cl := consumerAwait(t, calls, consumerTimeout, fmt.Sprintf("call %d", i))
		r := "first"
		if cl.retry != nil {
			r = fmt.Sprintf("retry %d", *cl.retry)
		}
		got[cl.typ] = append(got[cl.typ], r)
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v", err)
	}
	want := map[string][]string{"ok": {"first"}, "fail": {"first", "retry 1"}, "panic": {"first", "retry 1"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("calls = %v, want %v", got, want)
	}
	if len(calls) != 0 {
		t.Errorf("%d more handler calls, want none", len(calls))
	}
	consumerNoMore(t, client, "q", "c")
}

func TestConsumerDeadLettersAndUnknownTypes(t *testing.T) {
	ctx := context.Background()
	// Two consumers see every event: "strict" nacks unknown types (the
	// default), "lenient" skips them.
	client := newClient(t, "q", "strict", "lenient")
	consumerQueueConfig(t, client, "q", "max_retries", "0") // the first nack dead-letters

	done := make(chan string, 10)
	strict := client.NewConsumer("q", "strict", fastTicker(), consumerLogger(t))
	strict.Handle("bad", func(ctx context.Context, msg pgque.Message) error {
		return errors.New("bad input")
	})
	strict.Handle("boom", func(ctx context.Context, msg pgque.Message) error {
		panic(fmt.Sprintf("kaboom %s", msg.Payload))
	})
	// An error quoting bytes that PostgreSQL's text cannot hold.
	strict.Handle("binary", func(ctx context.Context, msg pgque.Message) error {
		return errors.New("bad \x00 input \xff")
	})
	strict.Handle("last", func(ctx context.Context, msg pgque.Message) error {
		done <- "strict"
		return nil
	})
	lenient := client.NewConsumer("q", "lenient", fastTicker(), consumerLogger(t),
		pgque.WithUnknownTypeHandling(pgque.SkipUnknownTypes))
	lenient.Handle("last", func(ctx context.Context, msg pgque.Message) error {
		done <- "lenient"
		return nil
	})
	runStrict, runLenient := consumerRun(t, strict), consumerRun(t, lenient)
	ids, err := client.SendBatch(ctx, "q", []pgque.Event{
		{Type: "mystery", Payload: 1}, {Type: "bad", Payload: 2}, {Type: "boom", Payload: 3}, {Type: "binary", Payload: 4},
		{Type: "last", Payload: 5},
	})
	if err != nil {
		t.Fatal(err)
	}
	// "last" is handled last (concurrency 1); shutdown then settles the batch.
	for range 2 {
		consumerAwait(t, done, consumerTimeout, "last message")
	}
	if err := runStrict.stop(); err != nil {
		t.Fatal(err)
	}
	if err := runLenient.stop(); err != nil {
		t.Fatal(err)
	}

	dls, err := client.DeadLetters(ctx, "q", 10)
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[int64]string{}
	for _, dl := range dls {
		if dl.Consumer != "strict" || dl.Reason == nil {
			t.Errorf("dead letter %+v, want only strict's, with a reason", dl)
			continue
		}
		reasons[dl.Message.MsgID] = *dl.Reason
	}
	want := map[int64]string{ids[0]: "no handler for type mystery", ids[1]: "bad input", ids[2]: "handler panicked: kaboom 3",
		ids[3]: "bad \uFFFD input \uFFFD"}
	if fmt.Sprint(reasons) != fmt.Sprint(want) {
		t.Errorf("dead letters = %v, want %v", reasons, want)
	}
	// Neither has anything left; lenient has no retries or dead letters.
	consumerNoMore(t, client, "q", "lenient")
	if msgs, err := client.Receive(ctx, "q", "strict", 100); err != nil || len(msgs) != 0 {
		t.Errorf("strict still receives %+v, %v", msgs, err)
	}
}

func TestConsumerConcurrency(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	const n, workers = 12, 4
	var mu sync.Mutex
	counts := map[int64]int{}
	var active, maxActive atomic.Int32
	started := 0
	barrier := make(chan struct{}) // closed once `workers` handlers run at once
	handled := make(chan struct{}, n)
	c := client.NewConsumer("q", "c", pgque.WithConcurrency(workers), consumerLogger(t))
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		a := active.Add(1)
		defer active.Add(-1)
		for m := maxActive.Load(); a > m && !maxActive.CompareAndSwap(m, a); m = maxActive.Load() {
		}
		mu.Lock()
		counts[msg.MsgID]++
		started++
		if started == workers {
			close(barrier)
		}
		mu.Unlock()
		// The first handlers wait for each other, so the parallelism
		// observed is exact, not a matter of timing.
		select {
		case <-barrier:
		case <-time.After(consumerTimeout):
			t.Errorf("message %d: never %d handlers at once", msg.MsgID, workers)
		}
		handled <- struct{}{}
		return nil
	})
	run := consumerRun(t, c)
	events := make([]pgque.Event, n)
	for i := range events {
		events[i] = pgque.Event{Type: "t", Payload: i}
	}
	ids, err := client.SendBatch(ctx, "q", events) // one batch
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		consumerAwait(t, handled, consumerTimeout, fmt.Sprintf("message %d", i))
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
	if got := maxActive.Load(); got != workers {
		t.Errorf("max parallel handlers = %d, want %d", got, workers)
	}
	for _, id := range ids {
		if counts[id] != 1 {
			t.Errorf("message %d handled %d times, want once", id, counts[id])
		}
	}
	consumerNoMore(t, client, "q", "c")
}

func TestConsumerGracefulShutdown(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	ids, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "slow"}, {Type: "t"}, {Type: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	startedSlow, release := make(chan struct{}), make(chan struct{})
	ctxErr := make(chan error, 1)
	var mu sync.Mutex
	var handled []int64
	c := client.NewConsumer("q", "c", consumerLogger(t))
	c.Handle("slow", func(ctx context.Context, msg pgque.Message) error {
		close(startedSlow)
		<-release
		ctxErr <- ctx.Err()
		mu.Lock()
		handled = append(handled, msg.MsgID)
		mu.Unlock()
		return nil
	})
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		mu.Lock()
		handled = append(handled, msg.MsgID)
		mu.Unlock()
		return nil
	})
	run := consumerRun(t, c)
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, startedSlow, consumerTimeout, "slow handler start")
	run.cancel()
	select {
	case <-run.done:
		t.Fatalf("Start returned (%v) while a handler was running", run.err)
	case <-time.After(100 * time.Millisecond): // only gives Start a chance to misbehave
	}
	close(release)
	if err := consumerAwait(t, ctxErr, consumerTimeout, "slow handler end"); err != nil {
		t.Errorf("handler context ended with Start's: %v", err)
	}
	if err := run.wait(); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	// The batch in hand was finished and acknowledged.
	if fmt.Sprint(handled) != fmt.Sprint(ids) {
		t.Errorf("handled %v, want %v", handled, ids)
	}
	consumerNoMore(t, client, "q", "c")
}

func TestConsumerShutdownTimeoutRedelivers(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	ids, err := client.SendBatch(ctx, "q", []pgque.Event{{Type: "stuck"}, {Type: "t"}, {Type: "t"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}

	// First run: the first handler ignores shutdown until the timeout
	// cancels its context, so the others never start.
	started, cancelled := make(chan struct{}), make(chan struct{})
	var others atomic.Int32
	c := client.NewConsumer("q", "c", pgque.WithShutdownTimeout(50*time.Millisecond), consumerLogger(t))
	c.Handle("stuck", func(ctx context.Context, msg pgque.Message) error {
		close(started)
		select {
		case <-ctx.Done():
			close(cancelled)
			return ctx.Err()
		case <-time.After(consumerTimeout):
			return errors.New("handler context never cancelled")
		}
	})
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		others.Add(1)
		return nil
	})
	run := consumerRun(t, c)
	consumerAwait(t, started, consumerTimeout, "handler start")
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
	select {
	case <-cancelled:
	default:
		t.Error("the shutdown timeout did not cancel the handler's context")
	}
	if n := others.Load(); n != 0 {
		t.Errorf("%d messages handled after the shutdown timeout, want 0", n)
	}

	// Next run: the whole batch comes again, as a first delivery (no
	// retry was scheduled), and nothing is lost.
	got := make(chan pgque.Message, 10)
	c2 := client.NewConsumer("q", "c", consumerLogger(t))
	c2.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		got <- msg
		return nil
	})
	run2 := consumerRun(t, c2)
	for i, id := range ids {
		m := consumerAwait(t, got, consumerTimeout, fmt.Sprintf("redelivery %d", i))
		if m.MsgID != id || m.RetryCount != nil {
			t.Errorf("redelivery %d = %d (retry count %v), want %d as a first delivery", i, m.MsgID, m.RetryCount, id)
		}
	}
	if err := run2.stop(); err != nil {
		t.Fatal(err)
	}
	consumerNoMore(t, client, "q", "c")
}

func TestConsumerListenerReconnect(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	probe, logOpt := newNotifyProbe(t)
	c := client.NewConsumer("q", "c", pgque.WithPollInterval(10*time.Second), fastTicker(), logOpt)
	c.Handle("*", probe.handle)
	consumerRun(t, c)
	old := consumerListenerPID(t, client.Pool(), 0)
	var ok bool
	if err := client.Pool().QueryRow(ctx, `SELECT pg_terminate_backend($1)`, old).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminate listener: %v, %v", ok, err)
	}
	consumerListenerPID(t, client.Pool(), old)
	probe.check(t, client, "q", 3)
}

func TestConsumerSurvivesConnectionLoss(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	// The test works through a pool of its own, so that it is not hit too.
	cfg, err := pgxpool.ParseConfig(client.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxConns = 1
	admin, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	handled := make(chan int64, 10)
	c := client.NewConsumer("q", "c", fastTicker(), consumerLogger(t))
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		handled <- msg.MsgID
		return nil
	})
	run := consumerRun(t, c)
	consumerListenerPID(t, admin, 0)
	// Kill every connection of the consumer: pool, listener, ticker.
	if _, err := admin.Exec(ctx, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
	                               WHERE datname = current_database() AND pid <> pg_backend_pid()
	                                 AND backend_type = 'client backend'`); err != nil {
		t.Fatal(err)
	}
	id, err := pgque.New(admin).Send(ctx, "q", pgque.Event{Type: "t", Payload: 1})
	if err != nil {
		t.Fatal(err)
	}
	if got := consumerAwait(t, handled, consumerTimeout, "event after connection loss"); got != id {
		t.Fatalf("handled %d, want %d", got, id)
	}
	if err := run.stop(); err != nil {
		t.Fatalf("Start = %v, want nil", err)
	}
}

func TestConsumerErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), consumerTimeout)
	defer cancel()
	client := newClient(t, "q")
	noop := func(ctx context.Context, msg pgque.Message) error { return nil }
	for _, tc := range []struct {
		name     string
		queue    string
		handlers bool
		opts     []pgque.Option
		want     error
	}{
		{"unknown queue", "nope", true, nil, pgque.ErrQueueNotFound},
		{"bad consumer name", "q", true, nil, pgque.ErrInvalidArgument},
		{"no handlers", "q", false, nil, pgque.ErrInvalidArgument},
		{"zero concurrency", "q", true, []pgque.Option{pgque.WithConcurrency(0)}, pgque.ErrInvalidArgument},
		{"zero max messages", "q", true, []pgque.Option{pgque.WithMaxMessages(0)}, pgque.ErrInvalidArgument},
		{"negative max catch-up", "q", true, []pgque.Option{pgque.WithMaxCatchUp(-1)}, pgque.ErrInvalidArgument},
		{"zero poll interval", "q", true, []pgque.Option{pgque.WithPollInterval(0)}, pgque.ErrInvalidArgument},
		{"negative retry delay", "q", true, []pgque.Option{pgque.WithRetryAfter(-1)}, pgque.ErrInvalidArgument},
		{"bad ticker", "q", true, []pgque.Option{pgque.WithTicker(pgque.WithTickInterval(0))}, pgque.ErrInvalidArgument},
	} {
		name := "c"
		if tc.name == "bad consumer name" {
			name = "no spaces"
		}
		c := client.NewConsumer(tc.queue, name, tc.opts...)
		if tc.handlers {
			c.Handle("*", noop)
		}
		if err := c.Start(ctx); !errors.Is(err, tc.want) {
			t.Errorf("%s: Start = %v, want %v", tc.name, err, tc.want)
		}
	}

	// One reader per consumer name and process.
	handled := make(chan struct{}, 1)
	c := client.NewConsumer("q", "c")
	c.Handle("*", func(ctx context.Context, msg pgque.Message) error {
		handled <- struct{}{}
		return nil
	})
	run := consumerRun(t, c)
	if _, err := client.Send(ctx, "q", pgque.Event{Type: "t"}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, handled, consumerTimeout, "first run") // it is running
	if err := c.Start(ctx); err == nil || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second Start = %v, want already running", err)
	}
	if err := run.stop(); err != nil {
		t.Fatal(err)
	}
}

// retryDue returns how far from now the retry of event id for consumer c
// of queue q is due; ok is false when there is none.
func retryDue(t *testing.T, pool *pgxpool.Pool, id int64) (d time.Duration, ok bool) {
	t.Helper()
	var secs float64
	err := pool.QueryRow(context.Background(),
		`SELECT extract(epoch FROM rq_due - clock_timestamp())::float8 FROM pgque.retry_queue WHERE ev_id = $1`, id).Scan(&secs)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return time.Duration(secs * float64(time.Second)), true
}

// A nack the engine refuses as invalid (PQ006: here a retry delay over its
// 100-year bound) does not stall the consumer: the message is nacked with
// the fixed 60 s delay instead, the piece is acknowledged, and the next
// message is handled.
func TestConsumerNackFallbackInvalid(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	logs := newMatchLog("nacking it with a fixed delay")
	handled := make(chan int64, 10)
	c := client.NewConsumer("q", "c", fastTicker(), pgque.WithRetryAfter(150*365*24*3600),
		pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	c.Handle("fail", func(ctx context.Context, msg pgque.Message) error { return errors.New("broken") })
	c.Handle("ok", func(ctx context.Context, msg pgque.Message) error {
		handled <- msg.MsgID
		return nil
	})
	consumerRun(t, c)
	bad, err := client.Send(ctx, "q", pgque.Event{Type: "fail", Payload: 1})
	if err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, logs.seen, consumerTimeout, "the fallback nack")
	good, err := client.Send(ctx, "q", pgque.Event{Type: "ok", Payload: 2})
	if err != nil {
		t.Fatal(err)
	}
	if id := consumerAwait(t, handled, consumerTimeout, "the next message"); id != good {
		t.Fatalf("handled %d, want %d", id, good)
	}
	d, ok := retryDue(t, client.Pool(), bad)
	if !ok || d < 50*time.Second || d > 61*time.Second {
		t.Errorf("retry of the failed event due in %v (found %v); want about 60 s", d, ok)
	}
	// The SDK refuses the delay before the engine sees it; either way the
	// log must say why.
	if !strings.Contains(logs.String(), "out of range") {
		t.Errorf("the log does not say what was wrong:\n%s", logs.String())
	}
}

// A nack the server keeps refusing with an error that is not PQ006 (here
// a lock timeout on the retry store) is retried; after four refusals the
// consumer falls back to the fixed 60 s delay and, once the server takes
// it, acknowledges the piece and moves on.
func TestConsumerNackFallbackAfterRefusals(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	cfg, err := pgxpool.ParseConfig(client.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = "20ms"
	cpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cpool.Close)
	cclient := pgque.New(cpool)

	logs := newMatchLog("nacking it with a fixed delay")
	started, proceed := make(chan struct{}, 1), make(chan struct{})
	handled := make(chan int64, 10)
	c := cclient.NewConsumer("q", "c", fastTicker(), pgque.WithRetryAfter(1),
		pgque.WithLogger(slog.New(slog.NewTextHandler(logs, nil))))
	c.Handle("fail", func(ctx context.Context, msg pgque.Message) error {
		started <- struct{}{}
		<-proceed
		return errors.New("broken")
	})
	c.Handle("ok", func(ctx context.Context, msg pgque.Message) error {
		handled <- msg.MsgID
		return nil
	})
	consumerRun(t, c)
	bad, err := client.Send(ctx, "q", pgque.Event{Type: "fail", Payload: 1})
	if err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, started, consumerTimeout, "the failing handler")
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK pgque.retry_queue IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	close(proceed)
	consumerAwait(t, logs.seen, consumerTimeout, "the fallback after refusals")
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	good, err := client.Send(ctx, "q", pgque.Event{Type: "ok", Payload: 2})
	if err != nil {
		t.Fatal(err)
	}
	if id := consumerAwait(t, handled, consumerTimeout, "the next message"); id != good {
		t.Fatalf("handled %d, want %d", id, good)
	}
	d, ok := retryDue(t, client.Pool(), bad)
	if !ok || d < 50*time.Second || d > 61*time.Second {
		t.Errorf("retry of the failed event due in %v (found %v); want about 60 s, not the configured 1 s", d, ok)
	}
	// Three refusals retried, the fourth falls back.
	if n := strings.Count(logs.String(), "acknowledging batch failed; retrying"); n < 3 || !strings.Contains(logs.String(), "failures=4") {
		t.Errorf("%d refused attempts logged, and the fallback should come with the fourth:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "55P03") {
		t.Errorf("the log does not name the server's error:\n%s", logs.String())
	}
}

// matchLog collects a log and signals when a line containing want is
// written.
type matchLog struct {
	logBuffer
	want string
	seen chan struct{}
}

func newMatchLog(want string) *matchLog {
	return &matchLog{want: want, seen: make(chan struct{}, 1)}
}

func (m *matchLog) Write(p []byte) (int, error) {
	n, err := m.logBuffer.Write(p) // first, so that the line is there when seen fires
	if strings.Contains(string(p), m.want) {
		select {
		case m.seen <- struct{}{}:
		default:
		}
	}
	return n, err
}

// Without WithLogger a consumer logs to slog.Default(): a failing handler
// is never silent.  Attributes are values (retry_count=0), not pointers.
func TestConsumerLogsToDefault(t *testing.T) {
	ctx := context.Background()
	logs := newMatchLog("message failed")
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(logs, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })

	client := newClient(t, "q", "c")
	c := client.NewConsumer("q", "c", fastTicker())
	c.Handle("*", func(context.Context, pgque.Message) error { return errors.New("broken") })
	consumerRun(t, c)
	id, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: 1})
	if err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, logs.seen, consumerTimeout, "the failure in the default log")
	line := logs.String()
	if !strings.Contains(line, fmt.Sprintf("msg_id=%d", id)) || !strings.Contains(line, "retry_count=0") ||
		!strings.Contains(line, "reason=broken") || strings.Contains(line, "0x") {
		t.Errorf("default log:\n%s", line)
	}
}

// Every Consumer of a client, of a client WithNamespace made from it, and
// Listen's callers share one listening connection, and ticks still wake
// each of them at once (their poll interval is 10 s).
func TestOneListeningConnection(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q1", "c")
	ns, err := client.WithNamespace("ns")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		c    *pgque.Client
		name string
	}{{client, "q2"}, {ns, "q3"}} {
		if _, err := q.c.CreateQueue(ctx, q.name); err != nil {
			t.Fatal(err)
		}
		if _, err := q.c.Subscribe(ctx, q.name, "c"); err != nil {
			t.Fatal(err)
		}
	}
	type run struct {
		c     *pgque.Client
		queue string
		probe *notifyProbe
	}
	var runs []run
	for _, r := range []run{{client, "q1", nil}, {client, "q2", nil}, {ns, "q3", nil}} {
		probe, logOpt := newNotifyProbe(t)
		c := r.c.NewConsumer(r.queue, "c", pgque.WithPollInterval(10*time.Second), logOpt)
		c.Handle("*", probe.handle)
		consumerRun(t, c)
		runs = append(runs, run{r.c, r.queue, probe})
	}
	ticks, unlisten := client.Listen("q2")
	defer unlisten()
	ticker := pgque.NewTicker(client.Pool(), pgque.WithTickInterval(5*time.Millisecond))
	tctx, stopTicker := context.WithCancel(ctx)
	defer stopTicker()
	go ticker.Run(tctx) //nolint:errcheck
	for _, r := range runs {
		r.probe.check(t, r.c, r.queue, 2)
	}
	consumerAwait(t, ticks, consumerTimeout, "a tick of q2 on Listen's channel")
	var n int
	if err := client.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND application_name = 'pgque-listener'`).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d listening connections (%v), want 1", n, err)
	}
}

// Releasing a worker that holds a batch notifies the queue's channel, so
// that the other workers, in any process, take the batch over at once.
func TestReleaseNotifies(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	other := pgque.New(client.Pool()) // another process's client
	ticks, unlisten := client.Listen("q")
	defer unlisten()
	consumerAwait(t, ticks, consumerTimeout, "the wake-up of the first LISTEN")
	if _, err := other.Send(ctx, "q", pgque.Event{Type: "t", Payload: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.ForceTick(ctx, "q"); err != nil {
		t.Fatal(err)
	}
	consumerAwait(t, ticks, consumerTimeout, "the tick's notification")
	msgs, err := other.ReceiveAsWorker(ctx, "q", "c", "w1", 10, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive as worker: %v, %v", msgs, err)
	}
	consumerDrain(ticks)
	if ok, err := other.ReleaseWorker(ctx, "q", "c", "w1"); err != nil || !ok {
		t.Fatalf("release: %v, %v", ok, err)
	}
	consumerAwait(t, ticks, consumerTimeout, "the release's notification")
	msgs, err = client.ReceiveAsWorker(ctx, "q", "c", "w2", 10, time.Minute)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("receive after the release: %v, %v", msgs, err)
	}
}
