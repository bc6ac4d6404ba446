package pgque_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// runTicker runs tk in a goroutine.  The returned stop cancels it, waits for
// Run to return and checks that it returned nil; it also runs at cleanup.
func runTicker(t *testing.T, tk *pgque.Ticker) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tk.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Ticker.Run after cancel = %v, want nil", err)
			}
			if tk.IsLeader() {
				t.Errorf("IsLeader after Run returned = true")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// poolNamed opens a pool on the database of base whose connections carry
// application_name app, so that pg_stat_activity tells whose session is whose.
// A Ticker connects with its pool's settings, so it carries the name too.
func poolNamed(t *testing.T, base *pgxpool.Pool, app string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(base.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = app
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// leaseHolder returns the holder of the Tickers' leader lease in pool's
// database, and whether its lease still runs; "" when nobody holds it.
func leaseHolder(ctx context.Context, pool *pgxpool.Pool) (holder string, valid bool, err error) {
	err = pool.QueryRow(ctx, `SELECT holder, valid FROM pgque.leader_info('ticker')`).Scan(&holder, &valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return holder, valid, err
}

// appBackends returns the backend pids of the sessions in pool's database
// whose application_name is app.
func appBackends(ctx context.Context, pool *pgxpool.Pool, app string) ([]int32, error) {
	rows, err := pool.Query(ctx, `SELECT pid FROM pg_stat_activity
	                               WHERE datname = current_database() AND application_name = $1 ORDER BY pid`, app)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[int32])
}

// terminateBackend kills a session from the server side, as a crash of the
// process or a network failure would end it.
func terminateBackend(t *testing.T, pool *pgxpool.Pool, pid int32) {
	t.Helper()
	var ok bool
	if err := pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend(%d) = %v, %v", pid, ok, err)
	}
}

// pollUntil calls cond every few milliseconds until it returns true; it fails
// the test when that takes longer than timeout.
func pollUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// receiveSoon polls Receive until it returns messages, for at most timeout.
// Nothing but a running Ticker ticks the queue.
func receiveSoon(t *testing.T, client *pgque.Client, queue, consumer string, timeout time.Duration) []pgque.Message {
	t.Helper()
	var msgs []pgque.Message
	pollUntil(t, timeout, "a message for "+consumer, func() bool {
		var err error
		msgs, err = client.Receive(context.Background(), queue, consumer, 100)
		if err != nil {
			t.Fatal(err)
		}
		return len(msgs) > 0
	})
	return msgs
}

// sendAndReceive checks that an event sent now reaches consumer c without
// ForceTick, i.e. that some Ticker is working.
func sendAndReceive(t *testing.T, client *pgque.Client, queue string) {
	t.Helper()
	ctx := context.Background()
	id, err := client.Send(ctx, queue, pgque.Event{Type: "ping", Payload: time.Now().UnixNano()})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, queue, "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id {
		t.Fatalf("received %+v, want only event %d", msgs, id)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
}

// (a) A running Ticker ticks new events: they become receivable without ForceTick.
func TestTickerDelivers(t *testing.T) {
	client := newClient(t, "q", "c")
	tk := pgque.NewTicker(client.Pool(), pgque.WithTickInterval(5*time.Millisecond))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	for range 3 {
		sendAndReceive(t, client, "q")
	}
}

// (b) Two Tickers on one database: one leads, the other waits, and the
// leader lease is held by the leader.
func TestTickerOneLeader(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	a := pgque.NewTicker(client.Pool(), pgque.WithElectionInterval(10*time.Millisecond))
	b := pgque.NewTicker(client.Pool(), pgque.WithElectionInterval(10*time.Millisecond))
	if a.Holder() == b.Holder() {
		t.Fatalf("both tickers hold the lease as %q", a.Holder())
	}
	runTicker(t, a)
	runTicker(t, b)
	pollUntil(t, 10*time.Second, "a leader", func() bool { return a.IsLeader() || b.IsLeader() })
	leader := a
	if b.IsLeader() {
		leader = b
	}
	// Both campaign every 10 ms; for 100 of those the leader stays the only one.
	for range 50 {
		if a.IsLeader() == b.IsLeader() || !leader.IsLeader() {
			t.Fatalf("IsLeader: a = %v, b = %v; want only %s", a.IsLeader(), b.IsLeader(), leader.Holder())
		}
		holder, valid, err := leaseHolder(ctx, client.Pool())
		if err != nil || !valid || holder != leader.Holder() {
			t.Fatalf("leader lease held by %q (valid: %v, err: %v), want %s", holder, valid, err, leader.Holder())
		}
		time.Sleep(20 * time.Millisecond) // sampling, not synchronization
	}
	sendAndReceive(t, client, "q")
}

// (c) When the leader stops, another Ticker takes over at once (the leader
// released its lease); when the leader's connection dies, it or the other
// leads again.
func TestTickerTakeover(t *testing.T) {
	t.Run("leader cancelled", func(t *testing.T) {
		ctx := context.Background()
		client := newClient(t, "q", "c")
		// A long lease: B can take over this quickly only if A released it.
		a := pgque.NewTicker(client.Pool(), pgque.WithLeaderLease(time.Minute))
		stopA := runTicker(t, a)
		pollUntil(t, 10*time.Second, "ticker A to lead", a.IsLeader)
		b := pgque.NewTicker(client.Pool(), pgque.WithLeaderLease(time.Minute), pgque.WithElectionInterval(100*time.Millisecond))
		runTicker(t, b)
		if b.IsLeader() {
			t.Fatal("B leads while A does")
		}
		stopA() // Run returns nil and A is no longer leader (checked by stop)
		pollUntil(t, 5*time.Second, "ticker B to take over", b.IsLeader)
		if holder, valid, err := leaseHolder(ctx, client.Pool()); err != nil || !valid || holder != b.Holder() {
			t.Fatalf("leader lease held by %q (valid %v, err %v), want B %s", holder, valid, err, b.Holder())
		}
		sendAndReceive(t, client, "q")
	})

	t.Run("leader connection killed", func(t *testing.T) {
		ctx := context.Background()
		client := newClient(t, "q", "c")
		a := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-a"))
		runTicker(t, a)
		pollUntil(t, 10*time.Second, "ticker A to lead", a.IsLeader)
		b := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-b"), pgque.WithElectionInterval(100*time.Millisecond))
		runTicker(t, b)
		pids, err := appBackends(ctx, client.Pool(), "ticker-a")
		if err != nil || len(pids) != 1 {
			t.Fatalf("ticker A's sessions: %v, %v; want one", pids, err)
		}
		terminateBackend(t, client.Pool(), pids[0])
		// A reconnects within half a second and still holds its lease, so
		// it normally leads on; B would take over had A not come back.
		pollUntil(t, 10*time.Second, "a leader on a new session", func() bool {
			now, err := appBackends(ctx, client.Pool(), "ticker-a")
			if err != nil {
				t.Fatal(err)
			}
			return len(now) == 1 && now[0] != pids[0] && (a.IsLeader() || b.IsLeader())
		})
		sendAndReceive(t, client, "q")
	})
}

// A lone Ticker whose connection dies reconnects and leads again.
func TestTickerReconnects(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	tk := pgque.NewTicker(poolNamed(t, client.Pool(), "ticker-a"))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	pids, err := appBackends(ctx, client.Pool(), "ticker-a")
	if err != nil || len(pids) != 1 {
		t.Fatalf("ticker sessions: %v, %v; want one", pids, err)
	}
	terminateBackend(t, client.Pool(), pids[0])
	pollUntil(t, 10*time.Second, "a new session of the ticker", func() bool {
		now, err := appBackends(ctx, client.Pool(), "ticker-a")
		if err != nil {
			t.Fatal(err)
		}
		return len(now) == 1 && now[0] != pids[0]
	})
	pollUntil(t, 10*time.Second, "the ticker to lead again", tk.IsLeader)
	sendAndReceive(t, client, "q")
}

// logBuffer collects a logger's lines for a test to read.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A server error is not a lost connection: while ticker() keeps failing
// (here with a lock timeout, as a full disk or an engine error would fail
// it) the Ticker logs the call and the SQLSTATE, backs off and keeps its
// one connection; once the cause is gone it ticks again on it.
func TestTickerServerErrorKeepsConnection(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	cfg, err := pgxpool.ParseConfig(client.Pool().Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "ticker-err"
	cfg.ConnConfig.RuntimeParams["lock_timeout"] = "20ms"
	tpool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tpool.Close)
	logs := &logBuffer{}
	tk := pgque.NewTicker(tpool, pgque.WithTickInterval(5*time.Millisecond),
		pgque.WithTickerLogger(slog.New(slog.NewTextHandler(logs, nil))))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	pids, err := appBackends(ctx, client.Pool(), "ticker-err")
	if err != nil || len(pids) != 1 {
		t.Fatalf("ticker sessions: %v, %v; want one", pids, err)
	}

	// Hold a lock ticker() waits for; the lease is unaffected.
	tx, err := client.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Released also when the test fails early: the pool's Close waits for it.
	t.Cleanup(func() { _ = tx.Rollback(ctx) })
	if _, err := tx.Exec(ctx, `LOCK pgque.queue IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	locked := time.Now()
	failures := func() int { return strings.Count(logs.String(), "ticker(): 55P03") }
	pollUntil(t, 10*time.Second, "five logged failures of ticker()", func() bool { return failures() >= 5 })
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	held, n := time.Since(locked), failures()
	sendAndReceive(t, client, "q")

	out := logs.String()
	if strings.Contains(out, "connection lost") || strings.Contains(out, "reconnecting") {
		t.Errorf("server errors were taken for a lost connection:\n%s", out)
	}
	if !strings.Contains(out, "retrying on the same connection") {
		t.Errorf("log does not say the call is retried on the same connection:\n%s", out)
	}
	now, err := appBackends(ctx, client.Pool(), "ticker-err")
	if err != nil || len(now) != 1 || now[0] != pids[0] {
		t.Errorf("ticker sessions after the errors: %v, %v; want the same one, %d", now, err, pids[0])
	}
	if !tk.IsLeader() {
		t.Error("the ticker lost leadership over errors of ticker()")
	}
	// Backed off, not repeated every tick: each attempt takes its 20 ms
	// lock timeout and a wait of at least 25 ms.
	t.Logf("%d failures of ticker() logged in %v", n, held)
	if limit := int(held/(40*time.Millisecond)) + 1; n > limit {
		t.Errorf("%d failures in %v: more than %d, not backed off", n, held, limit)
	}
}

// (d) The Ticker also runs maintenance: a nacked message due at once comes
// back, as a retry, with nothing else driving the queue.
func TestTickerRunsMaint(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if err := client.SetQueueConfig(ctx, "q", "retry_backoff_base", "0"); err != nil {
		t.Fatal(err)
	}
	runTicker(t, pgque.NewTicker(client.Pool(), pgque.WithMaintInterval(50*time.Millisecond)))
	id, err := client.Send(ctx, "q", pgque.Event{Type: "job", Payload: "x"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount != nil {
		t.Fatalf("first delivery: %+v, want event %d with no retry count", msgs, id)
	}
	if out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, "failed"); err != nil || out != pgque.OutcomeRetry {
		t.Fatalf("nack = %q, %v; want retry", out, err)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	msgs = receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount == nil || *msgs[0].RetryCount != 1 {
		t.Fatalf("redelivery: %+v, want event %d with retry count 1", msgs, id)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
}

// A replayed dead letter is delivered by the running Ticker too.
func TestTickerDeliversReplayedDeadLetter(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if err := client.SetQueueConfig(ctx, "q", "max_retries", "0"); err != nil {
		t.Fatal(err)
	}
	runTicker(t, pgque.NewTicker(client.Pool(), pgque.WithMaintInterval(50*time.Millisecond)))
	id, err := client.Send(ctx, "q", pgque.Event{Type: "job", Payload: "x"})
	if err != nil {
		t.Fatal(err)
	}
	msgs := receiveSoon(t, client, "q", "c", 10*time.Second)
	if out, err := client.NackResult(ctx, msgs[0].BatchID, msgs[0], 0, "broken"); err != nil || out != pgque.OutcomeDead {
		t.Fatalf("nack = %q, %v; want dead", out, err)
	}
	if ok, err := client.AckResult(ctx, msgs[0].BatchID); err != nil || !ok {
		t.Fatalf("ack = %v, %v", ok, err)
	}
	dls, err := client.DeadLetters(ctx, "q", 10)
	if err != nil || len(dls) != 1 {
		t.Fatalf("dead letters = %+v, %v", dls, err)
	}
	if _, err := client.ReplayDeadLetter(ctx, dls[0].ID); err != nil {
		t.Fatal(err)
	}
	msgs = receiveSoon(t, client, "q", "c", 10*time.Second)
	if len(msgs) != 1 || msgs[0].MsgID != id || msgs[0].RetryCount != nil {
		t.Fatalf("replay: %+v, want event %d as a first delivery", msgs, id)
	}
}

// (e) Run rejects intervals that are not positive, at once.
func TestTickerInvalidIntervals(t *testing.T) {
	client := newClient(t, "q")
	for name, opt := range map[string]pgque.TickerOption{
		"zero tick interval":         pgque.WithTickInterval(0),
		"negative tick interval":     pgque.WithTickInterval(-time.Millisecond),
		"zero maint interval":        pgque.WithMaintInterval(0),
		"negative maint interval":    pgque.WithMaintInterval(-time.Second),
		"negative election interval": pgque.WithElectionInterval(-time.Second),
		"zero leader lease":          pgque.WithLeaderLease(0),
		"sub-millisecond lease":      pgque.WithLeaderLease(time.Microsecond),
		"leader lease over an hour":  pgque.WithLeaderLease(time.Hour + time.Second),
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tk := pgque.NewTicker(client.Pool(), opt)
		if err := tk.Run(ctx); !errors.Is(err, pgque.ErrInvalidArgument) || ctx.Err() != nil {
			t.Errorf("%s: Run = %v, want ErrInvalidArgument at once", name, err)
		}
		if err := client.RunTicker(ctx, opt); !errors.Is(err, pgque.ErrInvalidArgument) || ctx.Err() != nil {
			t.Errorf("%s: RunTicker = %v, want ErrInvalidArgument at once", name, err)
		}
		cancel()
	}
}

// A Ticker whose role may not tick (here: pgque_reader only) stops with
// ErrPermissionDenied instead of retrying forever, and so does the Start of
// a Consumer WithTicker.
func TestTickerWithoutRightsStops(t *testing.T) {
	admin := newClient(t, "q", "c")
	pool := loginPool(t, admin, "reader", "pgque_reader")
	ctx, cancel := context.WithTimeout(context.Background(), consumerTimeout)
	defer cancel()
	if err := pgque.NewTicker(pool, pgque.WithTickerLogger(slog.New(slog.DiscardHandler))).Run(ctx); !errors.Is(err, pgque.ErrPermissionDenied) {
		t.Fatalf("Run = %v; want ErrPermissionDenied", err)
	}
	c := pgque.New(pool).NewConsumer("q", "c", pgque.WithTicker(), pgque.WithLogger(slog.New(slog.DiscardHandler)))
	c.Handle("*", func(context.Context, pgque.Message) error { return nil })
	if err := c.Start(ctx); !errors.Is(err, pgque.ErrPermissionDenied) {
		t.Fatalf("Consumer.Start with WithTicker = %v; want ErrPermissionDenied", err)
	}
	if ctx.Err() != nil {
		t.Fatal("it took until the test's timeout")
	}
}

// The Ticker warns about a queue that keeps events for a first consumer
// (get_unclaimed_info), and only about such a queue.
func TestTickerWarnsUnclaimed(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	if _, err := client.CreateQueue(ctx, "lonely"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"q", "lonely"} {
		if _, err := client.Send(ctx, q, pgque.Event{Type: "t"}); err != nil {
			t.Fatal(err)
		}
	}
	logs := &logBuffer{}
	runTicker(t, pgque.NewTicker(client.Pool(), pgque.WithTickerLogger(slog.New(slog.NewTextHandler(logs, nil)))))
	pollUntil(t, 10*time.Second, "a warning about queue lonely", func() bool {
		return strings.Contains(logs.String(), "queue has events and no consumer")
	})
	out := logs.String()
	if !strings.Contains(out, "queue=lonely unclaimed_events=1") || strings.Contains(out, "queue=q ") {
		t.Errorf("warnings name the wrong queues or counts:\n%s", out)
	}
}

// A send into a queue that had nothing waiting wakes an idle Ticker: with
// both intervals an hour, only the engine's notification on "pgque:wake"
// can make it tick, and each of three sends, one after the other, is
// delivered.
func TestTickerWokenBySend(t *testing.T) {
	ctx := context.Background()
	client := newClient(t, "q", "c")
	ticks, unlisten := client.Listen("q")
	defer unlisten()
	tk := pgque.NewTicker(client.Pool(), pgque.WithTickInterval(time.Hour), pgque.WithIdleTickInterval(time.Hour))
	runTicker(t, tk)
	pollUntil(t, 10*time.Second, "the ticker to lead", tk.IsLeader)
	for i := range 3 {
		id, err := client.Send(ctx, "q", pgque.Event{Type: "t", Payload: i})
		if err != nil {
			t.Fatal(err)
		}
		timeout := time.After(10 * time.Second)
		for delivered := false; !delivered; {
			select {
			case <-ticks:
			case <-timeout:
				t.Fatalf("send %d (event %d) did not wake the ticker within 10 s", i+1, id)
			}
			msgs, err := client.Receive(ctx, "q", "c", 10)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) == 0 {
				continue
			}
			if len(msgs) != 1 || msgs[0].MsgID != id {
				t.Fatalf("received %+v, want only event %d", msgs, id)
			}
			if err := client.Ack(ctx, msgs[0].BatchID); err != nil {
				t.Fatal(err)
			}
			delivered = true
		}
	}
}
